#!/usr/bin/env bash
# Runs on the device machine (H100/H200, driver 580 = CUDA 13.0, no Rust, no network), in the repository
# root, on the prebuilt .gpu-bundle/ of benches/gpu/build.sh:
#   1. nvidia-smi; 2. the CUDA tests (kernels vs CPU reference, golden StyA2K fixtures, NeAT's streaming
#   attention, prior and whole model vs the CPU); 3. CLI smoke runs on the GPU (StyA2K and NeAT); 4. the
#   fps / kernel-floor tables of StyA2K, then NeAT's (fps, peak memory, attention TFLOP/s vs cuBLAS). Logs and tables go to $OUT (the device tool's
#   folder that comes back), the tables also to stdout, last.
# Device tool: run `bash benches/gpu/run.sh` with carry [".gpu-bundle"] (add `--quick` for a short bench).
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=.gpu-bundle
OUT="${OUT:-$bundle/out}"
mkdir -p "$OUT"
[ -f "$bundle/cuda.gz" ] || { echo "no $bundle: run benches/gpu/build.sh first and carry it" >&2; exit 2; }
echo "bundle built from commit $(cat "$bundle/commit" 2>/dev/null)" | tee "$OUT/summary.txt"

nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" || { echo "nvidia-smi failed: no usable GPU" >&2; exit 2; }

# The CUDA libraries candle links (cuBLAS, cuRAND, cudart, NVRTC) come from the machine's Python
# `nvidia` wheels (shared/docs/gpu.md); the driver's libcuda from the system.
nvidia_dir=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])')
for lib in "$nvidia_dir"/*/lib; do LD_LIBRARY_PATH="$lib:${LD_LIBRARY_PATH:-}"; done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH}:/usr/local/nvidia/lib64"
bin=/tmp/stylestream-gpu
mkdir -p "$bin"
for f in "$bundle"/*.gz; do gunzip -c "$f" > "$bin/$(basename "$f" .gz)"; chmod +x "$bin/$(basename "$f" .gz)"; done
ldd "$bin/cuda" | grep "not found" && { echo "missing shared libraries (above)" >&2; exit 2; }

# Prebuilt tests find fixtures through STYLESTREAM_TEST_ROOT; the real-weights file beside it.
export STYLESTREAM_TEST_ROOT="$PWD"
skip=()
if [ -f "$bundle/latest_net_A2K.pth" ]; then
  mkdir -p ../shared/fixtures/official
  [ -f ../shared/fixtures/official/latest_net_A2K.pth ] || cp "$bundle/latest_net_A2K.pth" ../shared/fixtures/official/
else
  skip=(--skip golden_real_trained_a2k)
fi
status=0
"$bin/cuda" --test-threads=1 --nocapture ${skip[@]+"${skip[@]}"} 2>&1 | tee "$OUT/tests.log"
tests=${PIPESTATUS[0]}
[ "$tests" = 0 ] || status=1
grep -E "skipped|test result" "$OUT/tests.log" | tee -a "$OUT/summary.txt"
if grep -q "skipped: no CUDA device" "$OUT/tests.log"; then
  echo "FAILED: the tests found no CUDA device, so nothing was checked" | tee -a "$OUT/summary.txt"; status=1
fi

for precision in f32 f16; do
  start=$(date +%s.%N)
  if "$bin/stylestream" image --content tests/fixtures/images/chelsea.png \
    --style tests/fixtures/images/hubble_deep_field.jpg --model formula:20261122 \
    --device cuda --precision "$precision" -o "$OUT/chelsea_$precision.png" --overwrite 2>&1 | tee -a "$OUT/summary.txt"; then
    echo "image --device cuda --precision $precision: ok, $(echo "$(date +%s.%N) - $start" | bc) s (load + style + one frame)" \
      | tee -a "$OUT/summary.txt"
  else
    echo "image --device cuda --precision $precision: FAILED" | tee -a "$OUT/summary.txt"; status=1
  fi
done

for precision in f32 f16; do
  start=$(date +%s.%N)
  if "$bin/stylestream" image --content tests/fixtures/images/chelsea.png \
    --style tests/fixtures/images/hubble_deep_field.jpg --model formula-neat:20261122 \
    --device cuda --precision "$precision" -o "$OUT/chelsea_neat_$precision.png" --overwrite 2>&1 | tee -a "$OUT/summary.txt"; then
    echo "image NeAT --device cuda --precision $precision: ok, $(echo "$(date +%s.%N) - $start" | bc) s (load + style + one frame)" \
      | tee -a "$OUT/summary.txt"
  else
    echo "image NeAT --device cuda --precision $precision: FAILED" | tee -a "$OUT/summary.txt"; status=1
  fi
done

"$bin/cuda_stya2k" "$@" 2>&1 | tee "$OUT/bench.md"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo | tee -a "$OUT/bench.md"
"$bin/cuda_neat" "$@" 2>&1 | tee -a "$OUT/bench.md"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo; cat "$OUT/summary.txt"; echo; cat "$OUT/bench.md"
exit $status

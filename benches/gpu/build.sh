#!/usr/bin/env bash
# Builds here (no GPU needed) everything benches/gpu/run.sh runs on the device machine, which has no
# Rust toolchain and no network, into one git-ignored folder to carry: .gpu-bundle/
#   stylestream.gz   the CLI (`image --device cuda`), no media libraries
#   cuda.gz          the test binary of tests/cuda.rs (`cargo test --no-run` output), with check-kernels
#   cuda_stya2k.gz   the fps / kernel-floor bench (benches/cuda_stya2k.rs)
#   cuda_neat.gz     NeAT's fps / peak memory / attention TFLOP/s bench (benches/cuda_neat.rs)
#   latest_net_A2K.pth  the trained relu3_1 A2K for the golden real-weights test (../shared does not travel)
# Binaries are stripped and gzipped: the device tool carries at most 64 MiB with the working tree.
# Then, with the device tool: run `bash benches/gpu/run.sh` with carry [".gpu-bundle"].
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/cuda-env
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_CUDA:-$HOME/.cache/stylestream/target-cuda}"
bundle=.gpu-bundle
rm -rf "$bundle" && mkdir -p "$bundle"

common=(--release --no-default-features)
cargo build "${common[@]}" --features cuda --bin stylestream
cp "$CARGO_TARGET_DIR/release/stylestream" "$bundle/stylestream"
for name in cuda_stya2k cuda_neat; do
  bench=$(cargo bench --no-run --no-default-features --features cuda --bench "$name" --message-format=json \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep "$name")
  cp "$bench" "$bundle/$name"
done
# The test binary last: check-kernels rebuilds only this crate.
tests=$(cargo test --no-run "${common[@]}" --features cuda,check-kernels --test cuda --message-format=json \
  | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/cuda-')
cp "$tests" "$bundle/cuda"
for bin in stylestream cuda_stya2k cuda_neat cuda; do
  strip "$bundle/$bin" && gzip -9 "$bundle/$bin"
done
cp ../shared/fixtures/official/latest_net_A2K.pth "$bundle/" 2>/dev/null \
  || echo "note: ../shared/fixtures/official/latest_net_A2K.pth not found; run.sh skips the real-weights test"
git rev-parse HEAD > "$bundle/commit"
du -sh "$bundle" && ls -l "$bundle"

#!/usr/bin/env bash
# The `stylestream` GStreamer element against the CLI's own pipeline (appsink -> stage threads ->
# appsrc) on the same input and the same work: a clip made with videotestsrc is decoded, converted to
# RGB, stylised, and encoded again with x264 (medium, quantizer 20) into Matroska.
#   CLI:     stylestream video IN.mkv -o OUT.mkv --model M [--style S]
#   element: gst-launch-1.0 filesrc ! decodebin ! videoconvert ! RGB ! queue ! stylestream ! queue
#            ! videoconvert ! I420 ! x264enc (same settings) ! h264parse ! matroskamux ! filesink
# fps = frames / wall seconds of the whole command (model loading and style encoding included, for
# both). Prints the median of RUNS runs per case; results go to benches/RESULTS.md.
# Usage: bash benches/gst_element.sh [RUNS] (default 5). PROFILE=dev|release (default release) picks
# the build of both the binary and the plugin; NO_BUILD=1 uses the ones already built there; ONLY=TEXT
# runs only the cases whose label contains TEXT.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
profile=${PROFILE:-release}
case $profile in dev) out=debug ;; *) out=$profile ;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target=${CARGO_TARGET_DIR:-target}/$out
if [ -z "${NO_BUILD:-}" ]; then
  cargo build --profile "$profile" --bin stylestream
  cargo rustc --lib --profile "$profile" --crate-type cdylib
fi
# GStreamer names the entry point after the file: libgst<name>.so -> gst_plugin_<name>_get_desc.
mkdir -p "$work/plugins" && cp "$target/libstylestream.so" "$work/plugins/libgststylestream.so"
export GST_PLUGIN_PATH=$work/plugins GST_REGISTRY=$work/registry.bin
gst-inspect-1.0 stylestream >/dev/null

clip() { # clip NAME WIDTH HEIGHT FRAMES
  gst-launch-1.0 -q videotestsrc num-buffers="$4" pattern=ball ! "video/x-raw,width=$2,height=$3,framerate=30/1" \
    ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! h264parse ! matroskamux \
    ! filesink location="$work/$1.mkv"
}

seconds() { # seconds CMD... -> wall time of the command
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print($end - $start)"
}

median() { # median LABEL FRAMES SECONDS...
  python3 -c "import statistics,sys; n=int(sys.argv[2]); v=[n/float(x) for x in sys.argv[3:]]; s=sorted(float(x) for x in sys.argv[3:]); print(f'{sys.argv[1]}: median {statistics.median(v):.3f} fps over {len(v)} runs (min {min(v):.3f}, max {max(v):.3f}; median wall {statistics.median(s):.1f} s)')" "$@"
}

case_() { # case_ LABEL CLIP FRAMES MODEL [STYLE]
  local label=$1 clip=$2 frames=$3 model=$4 style=${5:-}
  [[ $label == *"${ONLY:-}"* ]] || return 0
  local cli=() element=()
  for _ in $(seq "$runs"); do
    cli+=("$(seconds "$target/stylestream" video "$work/$clip.mkv" -o "$work/cli.mkv" --overwrite --model "$model" ${style:+--style "$style"})")
    element+=("$(seconds gst-launch-1.0 -q filesrc location="$work/$clip.mkv" ! decodebin ! videoconvert \
      ! video/x-raw,format=RGB ! queue ! stylestream model="$model" ${style:+style="$style"} ! queue ! videoconvert \
      ! video/x-raw,format=I420 ! x264enc speed-preset=medium pass=qual quantizer=20 ! h264parse ! matroskamux \
      ! filesink location="$work/element.mkv")")
  done
  median "$label, CLI" "$frames" "${cli[@]}"
  median "$label, element" "$frames" "${element[@]}"
}

cp tests/fixtures/images/hubble_deep_field.jpg "$work/style.jpg"
for c in "io256 256 256 300" "io512 512 512 300" "m256 256 256 6"; do
  # shellcheck disable=SC2086
  clip $c
done
case_ "identity 256x256, 300 frames" io256 300 identity
case_ "identity 512x512, 300 frames" io512 300 identity
case_ "stya2k 256x256, 6 frames" m256 6 formula:7 "$work/style.jpg"

#!/usr/bin/env bash
# End-to-end pipeline throughput (decode -> model -> encode) against model-only time, on clips made
# with videotestsrc. Prints the median fps of RUNS runs per case; results go to benches/RESULTS.md.
# Usage: bash benches/pipeline.sh [RUNS] (default 5). Needs a release build: cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=${STYLESTREAM:-target/release/stylestream}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

clip() { # clip NAME WIDTH HEIGHT FRAMES
  gst-launch-1.0 -q videotestsrc num-buffers="$4" pattern=ball ! "video/x-raw,width=$2,height=$3,framerate=30/1" \
    ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=ultrafast ! h264parse ! mp4mux name=m ! filesink location="$work/$1.mp4" \
    audiotestsrc num-buffers=$(( $4 * 48000 / 30 / 1024 + 1 )) samplesperbuffer=1024 ! audio/x-raw,rate=48000 \
    ! avenc_aac ! aacparse ! m.
}

median_fps() { # median_fps LABEL ARGS...
  local label=$1; shift
  local all=()
  for _ in $(seq "$runs"); do
    fps=$("$bin" video "$@" -o "$work/out.mp4" --overwrite 2>&1 | sed -n 's/.*(\([0-9.]*\) fps).*/\1/p')
    all+=("$fps")
  done
  python3 -c "import statistics,sys; v=[float(x) for x in sys.argv[2:]]; print(f'{sys.argv[1]}: median {statistics.median(v):.2f} fps over {len(v)} runs (min {min(v):.2f}, max {max(v):.2f})')" "$label" "${all[@]}"
}

cp tests/fixtures/images/hubble_deep_field.jpg "$work/style.jpg"
clip io256 256 256 300
clip io512 512 512 300
clip m256 256 256 6
clip m512 512 512 3
median_fps "identity 256x256 (I/O ceiling)" "$work/io256.mp4" --model identity
median_fps "identity 512x512 (I/O ceiling)" "$work/io512.mp4" --model identity
median_fps "identity 256x256 + monitor" "$work/io256.mp4" --model identity --monitor
median_fps "stya2k 256x256" "$work/m256.mp4" --model formula:7 --style "$work/style.jpg"
median_fps "stya2k 256x256 + monitor" "$work/m256.mp4" --model formula:7 --style "$work/style.jpg" --monitor
median_fps "stya2k 512x512" "$work/m512.mp4" --model formula:7 --style "$work/style.jpg"

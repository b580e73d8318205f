#!/usr/bin/env bash
# NeAT (and StyA2K for comparison) at high resolution through the `image` command: wall time and peak
# RSS (`/usr/bin/time -v`) per run, median over RUNS runs at 1920x1080 and one run at 3840x2160.
# Content: astronaut.png scaled up with GStreamer; style: hubble_deep_field.jpg at 512 px (the default
# --style-size). The wall time includes weight generation (formula weights), PNG decode/encode and
# the style preparation, about 2 s over the frame itself.
# Usage: bash benches/neat_sizes.sh [RUNS] (default 5). Needs: cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
bin=${STYLESTREAM:-target/release/stylestream}
images=${IMAGES:-../shared/fixtures/images}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for size in 1920x1080 3840x2160; do
  gst-launch-1.0 -q filesrc location="$images/astronaut.png" ! pngdec ! videoconvert ! videoscale \
    ! "video/x-raw,width=${size%x*},height=${size#*x},format=RGB" ! pngenc ! filesink location="$work/$size.png"
done

measure() { # measure LABEL RUNS SIZE MODEL
  local label=$1 n=$2 size=$3 model=$4 walls=() rss=()
  for _ in $(seq "$n"); do
    /usr/bin/time -v "$bin" image --content "$work/$size.png" --style "$images/hubble_deep_field.jpg" \
      -o "$work/out.png" --overwrite --model "$model" 2>"$work/time.txt"
    walls+=("$(awk -F': ' '/Elapsed/ {n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s}' "$work/time.txt")")
    rss+=("$(awk -F': ' '/Maximum resident/ {print $2}' "$work/time.txt")")
  done
  printf '%s %s: wall %s s (runs: %s), peak RSS %s MB (max over runs)\n' "$label" "$size" \
    "$(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')" \
    "${walls[*]}" "$(printf '%s\n' "${rss[@]}" | sort -g | tail -1 | awk '{printf "%d", $1 / 1024}')"
}

measure neat "$runs" 1920x1080 formula-neat:20261122
measure stya2k 1 1920x1080 formula:20261122
measure neat 1 3840x2160 formula-neat:20261122

#!/usr/bin/env bash
# CPU speed before/after in one run (issue 21): the official PyTorch forward, then for each of two
# checkouts (BEFORE, AFTER: work trees of two commits) StyA2K and NeAT frames (criterion benches), NeAT
# at 1920x1080 through `image`, and StyA2K training steps at crops 128 and 256. Every number of one
# invocation comes from the same machine state, so ratios between the columns are what to read.
# Usage: BEFORE=/path/to/old/worktree [BEFORE_TARGET_DIR=dir] [AFTER_TARGET_DIR=dir]
#        [OFFICIAL=/path/to/StyA2K-checkout PYTHON=python-with-torch] [RUNS=3] bash benches/cpu_speed.sh
# Each tree builds in its own target dir (default: its ./target). Two work trees of one package must not
# share one: cargo names their artifacts alike and can take one tree's build as fresh for the other.
set -euo pipefail
cd "$(dirname "$0")/.."
after=$(pwd)
: "${BEFORE:?set BEFORE to a work tree of the commit to compare with}"
runs=${RUNS:-3}
images=${IMAGES:-$after/../shared/fixtures/images}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gst-launch-1.0 -q filesrc location="$images/astronaut.png" ! pngdec ! videoconvert ! videoscale \
  ! "video/x-raw,width=1920,height=1080,format=RGB" ! pngenc ! filesink location="$work/1080p.png"

echo "## $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -n "${OFFICIAL:-}" ]; then
  echo "### official PyTorch, full forward (style included)"
  "${PYTHON:-python3}" benches/baseline_official.py "$OFFICIAL" --runs 5 --sizes 256,512
fi

for label in before after; do
  tree=$after target=${AFTER_TARGET_DIR:-$after/target}
  [ "$label" = before ] && tree=$BEFORE target=${BEFORE_TARGET_DIR:-$BEFORE/target}
  export CARGO_TARGET_DIR=$target
  echo "### $label ($(git -C "$tree" log -1 --format='%h %s' | cut -c1-70))"
  (cd "$tree" && cargo build --release --quiet --bin stylestream 2>/dev/null)
  bin=$target/release/stylestream
  cp "$bin" "$work/stylestream-$label"
  if [ "$label" = after ]; then
    (cd "$tree" && cargo bench --quiet --bench cpu_conv -- 5 2>/dev/null)
  fi
  for bench in cpu_stya2k cpu_neat; do
    (cd "$tree" && cargo bench --quiet --bench "$bench" 2>/dev/null) | grep -E 'time:' | sed "s/^/$label /"
  done
  walls=()
  for _ in $(seq "$runs"); do
    start=$(date +%s.%N)
    "$work/stylestream-$label" image --content "$work/1080p.png" --style "$images/hubble_deep_field.jpg" \
      -o "$work/out.png" --overwrite --model formula-neat:20261122 >/dev/null 2>&1
    walls+=("$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')")
  done
  echo "$label neat_image_1080p: median $(printf '%s\n' "${walls[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}') s (runs: ${walls[*]})"
  MODELS=stya2k BIN="$work/stylestream-$label" bash "$after/benches/train_throughput.sh" 128 256 | sed "s/^/$label /"
done

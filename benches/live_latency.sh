#!/usr/bin/env bash
# Live latency of `stream` (issue 26): capture-to-sink latency p50/p95/p99 and fps in/out with stand-in
# models (an identity that sleeps 5, 20, 50, 200 ms) at 30 and 60 fps, for the appsink/appsrc path and
# the element path, beside the floor (model time + one source interval) and the issue's targets
# (p50 <= floor + 10 ms, p95 <= model + two intervals + 20 ms). Each case runs RUNS times for SECONDS
# (one process per run, benches/live_latency.rs); the table shows medians.
# BEFORE=COMMIT also builds benches/live_latency.rs against that commit's library (a temporary export;
# p99 shows as nan where LiveStats has none) and runs it interleaved with this tree, run by run, for
# the throughput comparison. Its latency column is measured its own way (from the frame's creation
# after the appsink, not from capture), so compare fps only.
# Usage: bash benches/live_latency.sh [RUNS] [SECONDS]   (default 5 runs of 10 s)
#   PATHS="appsink element" RATES="30 60" MODELS="5 20 50 200" BEFORE=e79ee65
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
seconds=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bench_exe() { # bench_exe DIR NAME: builds the live_latency bench of the crate in DIR (dev profile) and
  # copies it to $work/NAME (both crates build into the same file of the target directory)
  local exe
  exe=$( (cd "$1" && cargo bench --profile dev --bench live_latency --no-run --message-format=json) \
    | python3 -c "import json,sys; print([m['executable'] for m in map(json.loads, sys.stdin) if m.get('reason') == 'compiler-artifact' and m['target']['name'] == 'live_latency' and m.get('executable')][-1])")
  cp "$exe" "$work/$2"
}

bench_exe . now
now=$work/now
before=
if [ -n "${BEFORE:-}" ]; then
  mkdir "$work/before"
  git archive "$BEFORE" | tar -x -C "$work/before"
  sed 's/s\.latency_p99/f64::NAN/' benches/live_latency.rs >"$work/before/benches/live_latency.rs"
  printf '\n[[bench]]\nname = "live_latency"\nharness = false\nrequired-features = ["gst-plugin"]\n' >>"$work/before/Cargo.toml"
  bench_exe "$work/before" before-bench
  before=$work/before-bench
fi

for path in ${PATHS:-appsink element}; do
  for fps in ${RATES:-30 60}; do
    for model in ${MODELS:-5 20 50 200}; do
      for _ in $(seq "$runs"); do
        echo "now $("$now" "$path" "$fps" "$model" "$seconds" | grep '^RUN ')" | tee -a "$work/runs"
        if [ -n "$before" ]; then
          echo "before $("$before" "$path" "$fps" "$model" "$seconds" | grep '^RUN ')" | tee -a "$work/runs"
        fi
      done
    done
  done
done

python3 - "$work/runs" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    build, _, path, fps, model, *values = line.split()
    runs[(build, path, int(fps), int(model))].append([float(v) for v in values])
med = lambda rows, i: statistics.median(r[i] for r in rows)
print("| path | fps | model ms | floor ms | p50 ms | p95 ms | p99 ms | fps in | fps out | dropped/s | in - out - dropped, /s | p50 <= floor + 10 | p95 <= model + 2 intervals + 20 | fps out before | change |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (build, path, fps, model), rows in runs.items():
    if build != "now":
        continue
    interval = 1000 / fps
    floor = model + interval
    p50, p95, p99, fin, fout = (med(rows, i) for i in range(5))
    drops = med(rows, 5)
    # Frames in that neither came out nor were counted as dropped (a few are in flight at the end).
    lost = statistics.median(r[3] - r[4] - r[5] for r in rows)
    old = runs.get(("before", path, fps, model))
    before = f"{med(old, 4):.2f}" if old else "-"
    change = f"{(fout / med(old, 4) - 1) * 100:+.1f} %" if old else "-"
    ok = lambda b: "yes" if b else "**no**"
    print(f"| {path} | {fps} | {model} | {floor:.1f} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {fin:.1f} | {fout:.2f} | "
          f"{drops:.1f} | {lost:.2f} | {ok(p50 <= floor + 10)} | {ok(p95 <= model + 2 * interval + 20)} | {before} | {change} |")
print(f"\n{len(next(iter(runs.values())))} runs per case; medians.")
PY

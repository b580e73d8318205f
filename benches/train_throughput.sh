#!/usr/bin/env bash
# Training throughput on CPU (issues 5 and 9): `stylestream train` for 6 steps at batch 1 on generated images,
# per model and crop size; reports the median samples/s of steps 2..6 (step 1 warms up) from the run's own
# loss.csv. Both models run in the same invocation, so their numbers are comparable.
# Usage: bash benches/train_throughput.sh [CROP...]   (default: 128 256; MODELS="stya2k neat" by default)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
# BIN=path runs an already built binary (e.g. the dev profile's) instead of building the release one.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; fi
bin=${BIN:-$target/release/stylestream}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - "$work" <<'PY'
import sys, os, zlib, struct
root = sys.argv[1]
def png(path, w, h, f):
    raw = b''.join(b'\x00' + bytes(v for x in range(w) for v in f(x, y)) for y in range(h))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
for d in ('content', 'style'):
    os.makedirs(f'{root}/{d}')
for i in range(4):
    png(f'{root}/content/{i}.png', 320, 320, lambda x, y, i=i: ((x + 40 * i) % 256, y % 256, (x * y) % 256))
    png(f'{root}/style/{i}.png', 320, 320, lambda x, y, i=i: (255 * ((x // (5 + i)) % 2), 60 * i, 255 * ((y // 7) % 2)))
PY
echo "| model | crop | batch | median s/step | median samples/s |"
echo "|---|---|---|---|---|"
for crop in "${@:-128 256}"; do
  for c in $crop; do
    for model in ${MODELS:-stya2k neat}; do
      out="$work/out-$model-$c"
      "$bin" train --model "$model" --content "$work/content" --style "$work/style" -o "$out" --steps 6 \
        --batch 1 --load-size $((c + c / 4)) --crop "$c" --checkpoint-every 1000 --sample-every 1000 >/dev/null 2>&1
      # The wall time column by name: the models log different loss terms before it.
      col=$(head -1 "$out/loss.csv" | tr , '\n' | grep -nx seconds | cut -d: -f1)
      tail -n +3 "$out/loss.csv" | cut -d, -f"$col" | sort -g |
        awk -v m="$model" -v c="$c" '{s[NR] = $1} END {x = s[int((NR + 1) / 2)]; printf "| %s | %d | 1 | %.2f | %.3f |\n", m, c, x, 1 / x}'
    done
  done
done

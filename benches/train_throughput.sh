#!/usr/bin/env bash
# Training throughput on CPU (issue 5): `stylestream train` for 6 steps at batch 1 on generated images, per
# crop size; reports the median samples/s of steps 2..6 (step 1 warms up) from the run's own loss.csv.
# Usage: bash benches/train_throughput.sh [CROP...]   (default: 128 256)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet
bin="$target/release/stylestream"
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
echo "| crop | batch | median s/step | median samples/s |"
echo "|---|---|---|---|"
for crop in "${@:-128 256}"; do
  for c in $crop; do
    out="$work/out-$c"
    "$bin" train --content "$work/content" --style "$work/style" -o "$out" --steps 6 --batch 1 \
      --load-size $((c + c / 4)) --crop "$c" --checkpoint-every 1000 --sample-every 1000 >/dev/null 2>&1
    tail -n +3 "$out/loss.csv" | cut -d, -f6 | sort -g |
      awk -v c="$c" '{s[NR] = $1} END {m = s[int((NR + 1) / 2)]; printf "| %d | 1 | %.2f | %.3f |\n", c, m, 1 / m}'
  done
done

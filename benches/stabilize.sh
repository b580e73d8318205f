#!/usr/bin/env bash
# Temporal consistency with and without --stabilize on a synthetic pan (videotestsrc scrolling 2 px a
# frame), stylised frame by frame with StyA2K: E_warp of both (stylestream measure) and the content
# drift the stabiliser costs (PSNR and SSIM of the stabilised frames against the unstabilised ones).
# Usage: bash benches/stabilize.sh [STRENGTH] (default 0.5). Needs cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
strength=${1:-0.5}
bin=${STYLESTREAM:-target/release/stylestream}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
w=192 h=144 n=24
gst-launch-1.0 -q videotestsrc num-buffers=$n pattern=pinwheel horizontal-speed=2 \
  ! "video/x-raw,width=$w,height=$h,framerate=24/1" ! videoconvert ! video/x-raw,format=I420 ! x264enc qp-max=18 speed-preset=ultrafast \
  ! h264parse ! mp4mux ! filesink location="$work/pan.mp4"
style=tests/fixtures/images/hubble_deep_field.jpg
"$bin" video "$work/pan.mp4" -o "$work/plain.mp4" --model formula:7 --style "$style" --crf 10 2>&1 | tail -1
"$bin" video "$work/pan.mp4" -o "$work/stab.mp4" --model formula:7 --style "$style" --crf 10 --stabilize "$strength" 2>&1 | tail -1
for v in plain stab; do
  echo "== $v"
  "$bin" measure --source "$work/pan.mp4" --stylized "$work/$v.mp4" | sed -n '1,2p'
  gst-launch-1.0 -q filesrc location="$work/$v.mp4" ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 \
    ! filesink location="$work/$v.gray"
done
python3 - "$work/plain.gray" "$work/stab.gray" $w $h <<'PY'
import math, sys
a, b = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
w, h = int(sys.argv[3]), int(sys.argv[4])
mse = sum((x - y) ** 2 for x, y in zip(a, b)) / len(a)
print(f"drift: PSNR {10 * math.log10(255 ** 2 / max(mse, 1e-12)):.2f} dB over {len(a) // (w * h)} frames")
def ssim(x, y):  # global SSIM per 8x8 block, averaged (luma, 8-bit constants)
    c1, c2, vals = (0.01 * 255) ** 2, (0.03 * 255) ** 2, []
    for f in range(len(x) // (w * h)):
        for by in range(0, h - 7, 8):
            for bx in range(0, w - 7, 8):
                p = [x[f * w * h + (by + j) * w + bx + i] for j in range(8) for i in range(8)]
                q = [y[f * w * h + (by + j) * w + bx + i] for j in range(8) for i in range(8)]
                mp, mq = sum(p) / 64, sum(q) / 64
                vp = sum((u - mp) ** 2 for u in p) / 63; vq = sum((u - mq) ** 2 for u in q) / 63
                cov = sum((u - mp) * (v - mq) for u, v in zip(p, q)) / 63
                vals.append(((2 * mp * mq + c1) * (2 * cov + c2)) / ((mp * mp + mq * mq + c1) * (vp + vq + c2)))
    return sum(vals) / len(vals)
print(f"drift: SSIM {ssim(a, b):.4f} (stabilised vs unstabilised, 8x8 blocks, luma)")
PY

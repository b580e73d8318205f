#!/usr/bin/env python3
"""Times the official StyA2K PyTorch code on this CPU, the baseline for benches/RESULTS.md.

Usage: python3 benches/baseline_official.py /path/to/StyA2K-checkout [--threads 2] [--runs 10]
The official repository (LearningHx/StyA2K) is not part of stylestream: point at a checkout of it.
Its networks (A2K, Transform, Decoder) are imported from there; the encoder is the VGG layer list of
shared/docs/stya2k.md section 3. Weights are PyTorch's default init: timing does not depend on values.
Prints the median wall time of a full forward (encode content and style, attention, decode), which is
what the official test script runs per image.
"""
import argparse
import statistics
import sys
import time

import torch
from torch import nn


def encoder():
    """The normalised VGG-19 up to relu5_1, cut into the official five slices."""
    layers = [nn.Conv2d(3, 3, 1)]
    plan = [(3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256),
            (256, 256), "M", (256, 512), (512, 512), (512, 512), (512, 512), "M", (512, 512)]
    for p in plan:
        if p == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(p[0], p[1], 3), nn.ReLU()]
    return [nn.Sequential(*layers[a:b]) for a, b in [(0, 4), (4, 11), (11, 18), (18, 31), (31, 44)]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("official")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--sizes", default="256,512")
    args = ap.parse_args()
    sys.path.insert(0, args.official)
    from models import networks  # the official module

    torch.set_num_threads(args.threads)
    enc = encoder()
    a2k = networks.A2K(256).eval()
    transform = networks.Transform(512).eval()
    decoder = networks.Decoder(skip_connection_3=True).eval()

    def feats(x):
        out = []
        for s in enc:
            x = s(x)
            out.append(x)
        return out

    def forward(c, s):
        cf, sf = feats(c), feats(s)
        z3 = a2k(cf[2], sf[2], layer="3")
        return decoder(transform(cf[3], sf[3], cf[4], sf[4]), z3)

    for size in map(int, args.sizes.split(",")):
        ramp = torch.linspace(0, 1, size * size * 3).reshape(1, 3, size, size)
        c, s = torch.sin(ramp * 50) * 0.5 + 0.5, torch.cos(ramp * 31) * 0.5 + 0.5
        with torch.no_grad():
            forward(c, s)  # warm-up
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                forward(c, s)
                times.append(time.perf_counter() - t)
        print(f"official_full_{size}: median {statistics.median(times):.3f} s over {args.runs} runs "
              f"(min {min(times):.3f}, max {max(times):.3f}), torch {torch.__version__}, {args.threads} threads")


if __name__ == "__main__":
    main()

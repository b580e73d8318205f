#!/usr/bin/env bash
# Builds the `stylestream` GStreamer plugin (this crate's library as a cdylib: Cargo cannot make the
# crate type depend on a feature, so it is built on demand) and copies it where GStreamer looks for a
# user's plugins, so `gst-inspect-1.0 stylestream` and `gst-launch-1.0 ... ! stylestream ! ...` find it.
# Usage: bash scripts/install-gst-plugin.sh [DIR]
#   DIR      default ~/.local/share/gstreamer-1.0/plugins (any other: add it to GST_PLUGIN_PATH)
#   PROFILE  cargo profile, default release (dev builds faster and is optimised too, see Cargo.toml)
#   CARGO_FLAGS  extra cargo flags, e.g. "--features cuda"
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-${XDG_DATA_HOME:-$HOME/.local/share}/gstreamer-1.0/plugins}
profile=${PROFILE:-release}
# shellcheck disable=SC2086
cargo rustc --lib --profile "$profile" --crate-type cdylib ${CARGO_FLAGS:-}
case $profile in dev) out=debug ;; *) out=$profile ;; esac
built=${CARGO_TARGET_DIR:-target}/$out/libstylestream.so
mkdir -p "$dir"
# GStreamer names the entry point after the file: libgst<name>.so -> gst_plugin_<name>_get_desc.
# Copied under a temporary name and renamed, so a scan meanwhile never loads half a file.
cp "$built" "$dir/.libgststylestream.so.partial"
mv "$dir/.libgststylestream.so.partial" "$dir/libgststylestream.so"
echo "installed $dir/libgststylestream.so"

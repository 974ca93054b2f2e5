#!/usr/bin/env bash
# Configures (once) and builds one build directory.
#   scripts/build.sh release   -> build/        (-O2, assertions on)
#   scripts/build.sh asan      -> build-asan/   (address + undefined sanitizers)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour="${1:-release}"
case "$flavour" in
  release) dir=build;      options=(--buildtype=release) ;;
  asan)    dir=build-asan; options=(--buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false) ;;
  *) echo "usage: scripts/build.sh release|asan" >&2; exit 2 ;;
esac
if [[ ! -f "$dir/build.ninja" ]]; then
  meson setup "$dir" "${options[@]}" >/dev/null
fi
ninja -C "$dir" >/dev/null
echo "build: $dir ready"

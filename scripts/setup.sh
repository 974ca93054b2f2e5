#!/usr/bin/env bash
# Installs the Debian packages payswitch builds and tests with. Idempotent:
# `apt-get update` runs once, and only when something is missing; then
# `apt-get install -y` installs only the missing packages.
set -euo pipefail

PACKAGES=(
  build-essential pkg-config meson ninja-build
  libdpdk-dev liburing-dev libxxhash-dev libjemalloc-dev libcriterion-dev
  libmicrohttpd-dev python3 iproute2 procps
  gnuplot-nox
  clang libclang-rt-14-dev
  libsodium-dev libssl-dev openssl
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"

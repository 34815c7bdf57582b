#!/usr/bin/env bash
# Installs the Debian packages graft needs (only those missing), then configures and builds
# Release into build/. Safe to run repeatedly: a second run does no apt work and little compiling.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(grep -v '^#' scripts/deps.txt | tr -s ' \n' '\n' | sed '/^$/d')
missing=()
for p in $packages; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build.sh: installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
# Paths relative to the checkout, so a fresh clone elsewhere reuses cached objects.
export CCACHE_BASEDIR="$PWD"
jobs="${GRAFT_JOBS:-$(nproc)}"
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build build -j "$jobs"

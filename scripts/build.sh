#!/usr/bin/env bash
# Installs the Debian packages graft needs (only those missing), then configures and builds
# Release into build/ (--sanitize: build-asan/, with ASan and UBSan). Safe to run repeatedly: a second run does no apt work and little compiling.
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
# Most sources compile with a precompiled header (CMake's -include cmake_pch.hxx); ccache caches
# those only with this sloppiness (its manual, "Precompiled headers"). Without it a fresh clone
# recompiled ~75 % of the files.
export CCACHE_SLOPPINESS="${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}"
# Paths relative to the checkout, so a fresh clone elsewhere reuses cached objects.
export CCACHE_BASEDIR="$PWD"
jobs="${GRAFT_JOBS:-$(nproc)}"
# --sanitize: AddressSanitizer + UndefinedBehaviorSanitizer, into build-asan/.
dir=build
config=(-DCMAKE_BUILD_TYPE=Release)
if [ "${1:-}" = --sanitize ]; then
  dir=build-asan
  config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" -DGRAFT_SANITIZE=ON)
fi
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" "${config[@]}" >/dev/null
fi
cmake --build "$dir" -j "$jobs"

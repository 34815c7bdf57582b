#!/usr/bin/env bash
# Builds (scripts/build.sh), then runs the whole test suite with CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j "${GRAFT_TEST_JOBS:-2}" "$@"

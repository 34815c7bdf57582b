#!/usr/bin/env bash
# The main job, end to end on the bundled pair (models/) and Fashion-MNIST: summaries, the
# mobile cut at conv_pad_6, the advisor refusing a cut inside a server block, adapter design,
# stitching, adapter training (both networks frozen), evaluation, and the final table, also
# written as JSON (the path is printed at the end). Extra arguments go to `graft demo`
# (see build/graft demo --help), e.g. scripts/demo.sh --epochs 1 --limit 10000.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >&2
exec build/graft --threads "$(nproc)" demo --models models --out build/demo "$@"

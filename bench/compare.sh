#!/usr/bin/env bash
# graft vs ONNX Runtime (and optionally PyTorch) on the same ONNX files, interleaved in one run
# (the machine is shared and noisy: compare ratios from the same run, not absolute times across
# runs).
#   bench/compare.sh [OUT_DIR] [--quick] [--torch] [--models a,b,...] [--rounds N]
# Models: one of every torchvision classification family (bench/export_models.py, opset 13;
# the opset-17 export too wherever its graph differs from the opset-13 one), graft's zoo
# MobileNetV1-224 and InceptionResNetV2-299 and the canonical hybrid (MobileNet@conv_pad_6 ->
# adapter -> InceptionResNetV2@block17_20_ac). Batches 1 and 8 for all, 32 for the six models of
# the earlier benchmark; 2 threads. --quick: batch 1 only. --torch: PyTorch eager and frozen
# columns too (slow at batch 32). --models: only these (names as in the table). --rounds: how
# many times each engine runs each model and batch, alternating (default 5; the table keeps
# each engine's best median).
# Prints a Markdown table of medians with graft/ORT, the geometric mean and the largest ratio
# per batch, and writes the raw JSON lines to OUT_DIR/results.jsonl. Needs scripts/build.sh
# first, onnxruntime-node (installed into $GRAFT_ORT_DIR, default ~/.cache/graft-ort, with npm
# install --ignore-scripts when missing) and /usr/bin/python3 with python3-torch,
# python3-torchvision and python3-onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench; quick=""; torch=""; only=""; rounds=5
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --torch) torch=1 ;;
    --models) only="$2"; shift ;;
    --rounds) rounds="${2:-}"; shift
      [[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: --rounds wants a positive integer, not '$rounds'" >&2; exit 2; } ;;
    -*) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
    *) out="$1" ;;
  esac
  shift
done
g=build/graft
[ -x "$g" ] || { echo "compare.sh: $g is missing: run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$out"
ort_dir="${GRAFT_ORT_DIR:-$HOME/.cache/graft-ort}"
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ort_dir"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null)
fi
runs=30
# Runs at batch B: fewer for the larger batches (each is B images), at least 5; and at least
# about one second of timed runs (up to 500), so that a sub-millisecond model's median is not
# taken over 20 ms of a shared machine. `probe_ms` is graft's median from a short probe run.
runs_for() {
  local r=$(( runs * 8 / ($1 + 7) )); [ "$r" -lt 5 ] && r=5
  local t; t=$(awk -v ms="$2" 'BEGIN { n = int(1000 / (ms > 0.01 ? ms : 0.01)); print (n > 500 ? 500 : n) }')
  [ "$t" -gt "$r" ] && r=$t
  echo "$r"
}

[ -f "$out/mobilenet_v1.onnx" ] || $g zoo mobilenet_v1 -o "$out/mobilenet_v1.onnx" >/dev/null
[ -f "$out/inception_resnet_v2.onnx" ] || $g zoo inception_resnet_v2 -o "$out/inception_resnet_v2.onnx" >/dev/null
[ -f "$out/hybrid.onnx" ] || $g stitch --head "$out/mobilenet_v1.onnx@conv_pad_6" \
  --tail "$out/inception_resnet_v2.onnx@block17_20_ac" --seed 1 -o "$out/hybrid.onnx" >/dev/null
/usr/bin/python3 bench/export_models.py "$out" >/dev/null
torchvision=$(/usr/bin/python3 bench/export_models.py "$out" --list)
# Opset-17 exports whose op types differ from the opset-13 ones (the rest are the same graph).
op17=$(/usr/bin/python3 - "$out" $torchvision <<'PY'
import collections, os, sys
import onnx
out = sys.argv[1]
for m in sys.argv[2:]:
    ops = [[n.op_type for n in onnx.load(os.path.join(out, f), load_external_data=False).graph.node]
           for f in (m + ".onnx", m + "_op17.onnx")]
    if collections.Counter(ops[0]) != collections.Counter(ops[1]):
        print(m + "_op17")
PY
)
models="mobilenet_v1 inception_resnet_v2 hybrid $torchvision $op17"
big="mobilenet_v1 inception_resnet_v2 hybrid mobilenet_v2 resnet50 inception_v3"
if [ -n "$only" ]; then models=$(echo "$only" | tr , ' '); big=$(echo " $big " | tr ' ' '\n' | grep -xF -f <(echo "$models" | tr ' ' '\n') || true); fi
for m in $models; do [ -f "$out/$m.onnx" ] || { echo "compare.sh: no model $out/$m.onnx" >&2; exit 1; }; done

: > "$out/results.jsonl"
batches="1 8 32"
[ -n "$quick" ] && batches="1"
for b in $batches; do
  set_models=$models
  [ "$b" = 32 ] && set_models=$big
  for m in $set_models; do
    f="$out/$m.onnx"
    probe_ms=$($g bench "$f" --batch "$b" --threads 2 --runs 3 --warmup 2 --json |
      sed -n 's/.*"median_ms":\([0-9.e+-]*\).*/\1/p')
    r=$(runs_for "$b" "${probe_ms:-0}")
    # Interleaved in the same minutes; graft and ORT $rounds times each (graft, ORT, graft, ORT,
    # ...), and the table keeps each engine's best median, so a noisy burst on this shared
    # machine does not decide a ratio alone.
    for ((round = 1; round <= rounds; round++)); do
      $g bench "$f" --batch "$b" --threads 2 --runs "$r" --warmup 3 --json |
        sed 's/^{/{"engine":"graft",/' >> "$out/results.jsonl"
      node bench/ort_bench.js "$f" --batch "$b" --threads 2 --runs "$r" --warmup 3 >> "$out/results.jsonl"
    done
    if [ -n "$torch" ]; then
      for mode in eager frozen; do
        /usr/bin/python3 bench/torch_bench.py "$f" --mode $mode --batch "$b" --threads 2 --runs "$r" --warmup 2 \
          >> "$out/results.jsonl"
      done
    fi
  done
done
/usr/bin/python3 bench/table.py "$out/results.jsonl"

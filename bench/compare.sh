#!/usr/bin/env bash
# graft vs ONNX Runtime vs PyTorch on the same ONNX files, interleaved in one run (the machine is
# shared and noisy: compare ratios from the same run, not absolute times across runs).
#   bench/compare.sh [OUT_DIR] [--quick]
# Models: zoo MobileNetV1-224, zoo InceptionResNetV2-299, the canonical hybrid
# (MobileNet@conv_pad_6 -> adapter -> InceptionResNetV2@block17_20_ac), and PyTorch exports of
# MobileNetV2, ResNet-50 and Inception v3; batches 1, 8 and 32; 2 threads. Prints a Markdown table
# with medians and the graft/ORT and graft/PyTorch-eager ratios (lower is better for graft), and
# writes the raw JSON lines to OUT_DIR/results.jsonl. Needs scripts/build.sh first, onnxruntime-node
# (installed into $GRAFT_ORT_DIR, default ~/.cache/graft-ort, with npm install --ignore-scripts when
# missing) and /usr/bin/python3 with python3-torch, python3-torchvision and python3-onnx.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/bench}"; quick="${2:-}"
g=build/graft
mkdir -p "$out"
ort_dir="${GRAFT_ORT_DIR:-$HOME/.cache/graft-ort}"
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ort_dir"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null)
fi
runs=30; batches="1 8 32"
[ "$quick" = --quick ] && batches="1"
# Runs at batch B: fewer for the larger batches (each is B images), at least 5.
runs_for() { local r=$(( runs * 8 / ($1 + 7) )); [ "$r" -lt 5 ] && r=5; echo "$r"; }

[ -f "$out/mobilenet_v1.onnx" ] || $g zoo mobilenet_v1 -o "$out/mobilenet_v1.onnx" >/dev/null
[ -f "$out/inception_resnet_v2.onnx" ] || $g zoo inception_resnet_v2 -o "$out/inception_resnet_v2.onnx" >/dev/null
[ -f "$out/hybrid.onnx" ] || $g stitch --head "$out/mobilenet_v1.onnx@conv_pad_6" \
  --tail "$out/inception_resnet_v2.onnx@block17_20_ac" --seed 1 -o "$out/hybrid.onnx" >/dev/null
/usr/bin/python3 bench/export_models.py "$out" >/dev/null

models="mobilenet_v1 inception_resnet_v2 hybrid mobilenet_v2 resnet50 inception_v3"
: > "$out/results.jsonl"
for b in $batches; do
  for m in $models; do
    f="$out/$m.onnx"
    r=$(runs_for "$b")
    # Interleaved in the same minute; graft and ORT three times each (graft, ORT, graft, ORT,
    # graft, ORT), and the table keeps each engine's best median, so a noisy burst on this shared
    # machine does not decide a ratio alone.
    for round in 1 2 3; do
      $g bench "$f" --batch "$b" --threads 2 --runs "$r" --warmup 3 --json |
        sed 's/^{/{"engine":"graft",/' >> "$out/results.jsonl"
      node bench/ort_bench.js "$f" --batch "$b" --threads 2 --runs "$r" --warmup 3 >> "$out/results.jsonl"
    done
    for mode in eager frozen; do
      /usr/bin/python3 bench/torch_bench.py "$f" --mode $mode --batch "$b" --threads 2 --runs "$r" --warmup 2 \
        >> "$out/results.jsonl"
    done
  done
done
/usr/bin/python3 - "$out/results.jsonl" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
key = lambda r: (os.path.basename(r["model"]).replace(".onnx", ""), r["batch"])
table = {}
for r in rows:
    e = table.setdefault(key(r), {})
    e[r["engine"]] = min(e.get(r["engine"], float("inf")), r["median_ms"])
versions = {r["engine"]: r.get("version", "") for r in rows}
print(f"ONNX Runtime {versions.get('onnxruntime', '?')}, PyTorch {versions.get('pytorch-eager', '?')}; "
      "median latency in ms, 2 threads")
print()
print("| model | batch | graft | ORT | PyTorch eager | PyTorch frozen | graft/ORT | graft/PyTorch eager | graft/PyTorch frozen |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
worst = {}
for (m, b), e in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    gr, ort, pe, pf = (e.get(k) for k in ("graft", "onnxruntime", "pytorch-eager", "pytorch-frozen"))
    f = lambda v: "-" if v is None else f"{v:.2f}"
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"
    print(f"| {m} | {b} | {f(gr)} | {f(ort)} | {f(pe)} | {f(pf)} | {ratio(gr, ort)} | {ratio(gr, pe)} | {ratio(gr, pf)} |")
    if gr is not None and ort is not None and gr / ort > worst.get(b, (0, ""))[0]:
        worst[b] = (gr / ort, m)
print()
for b, (r, m) in sorted(worst.items()):
    print(f"largest graft/ORT at batch {b}: {r:.2f} ({m})")
PY

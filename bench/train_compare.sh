#!/usr/bin/env bash
# Adapter-training speed: graft against PyTorch-Python, in one run, on the same hybrid.
#   bench/train_compare.sh [OUT_DIR] [--quick]
# The hybrid: torchvision MobileNetV2 up to features.6 (32x28x28), a 1x1 conv adapter to 512
# channels + BatchNorm + ReLU, torchvision ResNet-50 from layer3 on. graft stitches it from the
# ONNX exports (bench/train_torch.py export); bench/train_torch.py builds it from the torchvision
# modules. Both: batch 64, SGD (lr 0.01, momentum 0.9), cross-entropy, both networks frozen,
# 2 threads, the first N Fashion-MNIST training images at 224x224 RGB. graft runs with and
# without its feature cache; PyTorch runs as it comes, and once more with glibc's malloc told to
# keep freed memory (what graft's CLI does for itself; see docs/PERFORMANCE.md).
# Measured alike: images/s over the steps after the first two (PyTorch's script runs two untimed
# warm-up steps; graft's --log gives each step's time, and its whole-run rate is shown too). The
# four runs go twice, interleaved, and each keeps its better round, so one noisy minute on this
# shared machine does not decide a ratio alone.
# Prints a Markdown table of images/s and the ratios; raw JSON lines in OUT_DIR/train.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-build/bench}"; quick="${2:-}"
g=build/graft
images=1280; steps=12
[ "$quick" = --quick ] && { images=384; steps=3; }
mkdir -p "$out"
[ -f "$out/mobilenet_v2_train.onnx" ] && [ -f "$out/resnet50_train.onnx" ] ||
  /usr/bin/python3 bench/train_torch.py export "$out"
[ -f "$out/train_hybrid.onnx" ] ||
  $g stitch --head "$out/mobilenet_v2_train.onnx@tensor:/features/features.6/Add_output_0" \
    --tail "$out/resnet50_train.onnx@tensor:/layer2/layer2.3/relu_2/Relu_output_0" \
    --adapter "conv:k=1,s=1,p=0,c=512;bn;relu" --seed 1 -o "$out/train_hybrid.onnx" >/dev/null

results="$out/train.jsonl"
: > "$results"
warmup=2
graft_train() {  # label, extra flags
  local log="$out/train_$1.log.jsonl" t0 t1
  t0=$(date +%s.%N)
  $g --threads 2 train "$out/train_hybrid.onnx" -o "$out/train_hybrid_trained.onnx" --limit "$images" \
    --batch 64 --lr 0.01 --momentum 0.9 --clip 0 --no-progress --log "$log" "${@:2}" >/dev/null 2>&1
  t1=$(date +%s.%N)
  /usr/bin/python3 - "$log" "$1" "$t0" "$t1" "$warmup" >> "$results" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
w = int(sys.argv[5])
if len(steps) <= w:
    sys.exit(f"train_compare.sh: {sys.argv[1]} has {len(steps)} steps; timing needs more than {w}")
done = lambda s: s["images_per_s"] * s["seconds"]  # images trained by the end of step s
first, last = steps[w - 1], steps[-1]
print(json.dumps({"engine": "graft-" + sys.argv[2], "steps": len(steps) - w, "warmup": w,
                  "images_per_s": (done(last) - done(first)) / (last["seconds"] - first["seconds"]),
                  "whole_run_images_per_s": last["images_per_s"], "images": round(done(last)),
                  "wall_s": float(sys.argv[4]) - float(sys.argv[3])}))
PY
}
torch_train() {  # label, then an optional environment assignment
  env ${2:-} /usr/bin/python3 bench/train_torch.py train --images "$images" --steps "$steps" --warmup "$warmup" \
    --threads 2 | sed "s/\"engine\": \"pytorch\"/\"engine\": \"$1\"/" >> "$results"
}
for round in 1 2; do
  graft_train cache
  graft_train nocache --no-cache
  torch_train pytorch
  torch_train pytorch-keepmem GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647
done

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = {}
for r in (json.loads(l) for l in open(sys.argv[1]) if l.strip()):
    if r["images_per_s"] > rows.get(r["engine"], {"images_per_s": 0})["images_per_s"]:
        rows[r["engine"]] = r
base = rows["pytorch"]["images_per_s"]
print("| run | images/s | vs PyTorch-Python | whole run, images/s |")
print("| --- | ---: | ---: | ---: |")
names = {"graft-nocache": "graft, no feature cache", "graft-cache": "graft, feature cache",
         "pytorch": "PyTorch-Python (as it comes)", "pytorch-keepmem": "PyTorch-Python, malloc keeping freed memory"}
for k in ("graft-nocache", "graft-cache", "pytorch", "pytorch-keepmem"):
    if k in rows:
        v = rows[k]["images_per_s"]
        whole = rows[k].get("whole_run_images_per_s")
        print(f"| {names[k]} | {v:.1f} | {v / base:.2f}x | {'-' if whole is None else f'{whole:.1f}'} |")
PY

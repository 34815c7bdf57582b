#!/usr/bin/env bash
# The stitched hybrid (and the server half graft split writes for Triton) is plain ONNX: ONNX
# Runtime (npm onnxruntime-node) runs it and gives
# graft's outputs. Installs onnxruntime-node into $GRAFT_ORT_DIR (default ~/.cache/graft-ort)
# when it is missing; fails (never skips) if it cannot.
set -euo pipefail
graft="$1"; interop="$2"; root="$(cd "$(dirname "$0")/../.." && pwd)"
ort_dir="${GRAFT_ORT_DIR:-$HOME/.cache/graft-ort}"
if [ ! -d "$ort_dir/node_modules/onnxruntime-node" ]; then
  mkdir -p "$ort_dir"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund onnxruntime-node >/dev/null)
fi
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
compare() {  # graft.npy ort.npy label
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import sys, numpy as np
g, o = np.load(sys.argv[1]), np.load(sys.argv[2])
assert g.shape == o.shape, (g.shape, o.shape)
scale = np.abs(o).max(); diff = np.abs(g - o).max()
print(f"{sys.argv[3]}: graft vs ONNX Runtime max abs difference {diff:.3g} (max |output| {scale:.3g})")
sys.exit(0 if diff <= 1e-4 * max(scale, 1e-6) + 1e-6 else 1)
PY
}
run_both() {  # model output-name label
  "$graft" run "$t/$1.onnx" --input "input=$t/x.npy" --output "$2=$t/$1.graft.npy" >/dev/null
  GRAFT_ORT_DIR="$ort_dir" node "$root/tools/ort_run.js" "$t/$1.onnx" --input "input=$t/x.npy" \
    --output "$2=$t/$1.ort.npy"
  compare "$t/$1.graft.npy" "$t/$1.ort.npy" "$3"
}
closest() {  # model CxHxW -> the cut point tensor nearest that shape
  "$graft" cuts "$1" --shape "$2" --json | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['ranked'][0]['tensor'])"
}

# 1. Two PyTorch exports (real, O(1) logits): ResNet-18's head into MobileNet v2's tail.
a="$interop/resnet18_op13/model.onnx"; b="$interop/mobilenet_v2_op13/model.onnx"
ta=$(closest "$a" 128x12x12); tb=$(closest "$b" 32x12x12)
"$graft" stitch --head "$a@tensor:$ta" --tail "$b@tensor:$tb" --seed 3 -o "$t/h1.onnx" >/dev/null
/usr/bin/python3 -c "import numpy as np; np.save('$t/x.npy', np.random.RandomState(0).randn(3,3,96,96).astype('float32'))"
run_both h1 logits "resnet18@$ta -> mobilenet_v2@$tb"

# 2. Zoo models into a multi-tensor frontier of InceptionResNetV2 (one adapter branch per
#    tensor, one through a Resize), with a bottleneck adapter.
"$graft" zoo mobilenet_v1 --alpha 0.25 --input 96 --classes 10 --seed 1 -o "$t/m.onnx" >/dev/null
"$graft" zoo inception_resnet_v2 --input 107 --width 0.25 --repeats 1,2,1 --classes 10 --seed 2 -o "$t/i.onnx" >/dev/null
"$graft" stitch --head "$t/m.onnx@36" --tail "$t/i.onnx@activation_31" --adapter bottleneck -o "$t/h2.onnx" >/dev/null
/usr/bin/python3 -c "import numpy as np; np.save('$t/x.npy', np.random.RandomState(1).rand(3,3,96,96).astype('float32'))"
"$graft" run "$t/h2.onnx" --input "input_1=$t/x.npy" --output "predictions=$t/h2.graft.npy" >/dev/null
GRAFT_ORT_DIR="$ort_dir" node "$root/tools/ort_run.js" "$t/h2.onnx" --input "input_1=$t/x.npy" --output "predictions=$t/h2.ort.npy"
compare "$t/h2.graft.npy" "$t/h2.ort.npy" "mobilenet_v1@36 -> inception_resnet_v2@activation_31 (2 branches)"

# 3. The server half graft split writes into a Triton model repository is what Triton's
#    onnxruntime backend runs: ONNX Runtime runs it on a batch of split tensors, and the device
#    half (in graft) followed by it gives the hybrid's outputs.
"$graft" split "$t/h2.onnx" --device "$t/dev.onnx" --server "$t/srv.onnx" --triton-repo "$t/triton" >/dev/null
split=$(/usr/bin/python3 -c "import onnx; print(onnx.load('$t/dev.onnx').graph.output[0].name)")
"$graft" run "$t/dev.onnx" --input "input_1=$t/x.npy" --output "$split=$t/f.npy" >/dev/null
GRAFT_ORT_DIR="$ort_dir" node "$root/tools/ort_run.js" "$t/triton/srv/1/model.onnx" --input "$split=$t/f.npy" \
  --output "predictions=$t/srv.ort.npy"
compare "$t/h2.graft.npy" "$t/srv.ort.npy" "triton repository entry of the server half (batch 3)"
grep -q 'platform: "onnxruntime_onnx"' "$t/triton/srv/config.pbtxt"

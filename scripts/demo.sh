#!/usr/bin/env bash
# The main job on the bundled architectures. For now (foundation stage): build graft, write the
# two zoo models of the canonical example, and show their per-layer summaries, including the
# tensors the canonical example is about.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >&2

out="${GRAFT_DEMO_DIR:-build/demo}"
mkdir -p "$out"
g=build/graft

echo "== MobileNet v1 (alpha 1.0, 224x224x3), as tf.keras builds it"
$g zoo mobilenet_v1 -o "$out/mobilenet_v1.onnx"
$g summary "$out/mobilenet_v1.onnx" > "$out/mobilenet_v1.summary.txt"
sed -n '1,3p' "$out/mobilenet_v1.summary.txt"
grep -E "^ *(3[3-9]|8[6-9]|90)  " "$out/mobilenet_v1.summary.txt"
tail -4 "$out/mobilenet_v1.summary.txt"
echo "   ... row 36 is conv_pad_6, the (29, 29, 256) tensor of the canonical example"
echo
echo "== InceptionResNetV2 (299x299x3), as tf.keras builds it"
$g zoo inception_resnet_v2 -o "$out/inception_resnet_v2.onnx"
$g summary "$out/inception_resnet_v2.onnx" > "$out/inception_resnet_v2.summary.txt"
sed -n '1,3p' "$out/inception_resnet_v2.summary.txt"
grep -E "^ *[0-9]+  (block17_20_ac|conv2d_157|batch_normalization_157|activation_157|conv2d_159|batch_normalization_159|mixed_7a) " \
  "$out/inception_resnet_v2.summary.txt"
tail -4 "$out/inception_resnet_v2.summary.txt"
echo
echo "Full tables: $g summary $out/inception_resnet_v2.onnx (add --json for machine-readable output)"

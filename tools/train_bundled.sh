#!/usr/bin/env bash
# Regenerates the bundled pretrained pair in models/ from scratch with graft's own trainer on
# Fashion-MNIST (Debian's dataset-fashion-mnist). Run from the project root after
# scripts/build.sh:   tools/train_bundled.sh [OUT_DIR] [mobile|server|both]
set -euo pipefail
out="${1:-models}"; which="${2:-both}"
g=build/graft
mkdir -p "$out"
t0=$(date +%s)
if [ "$which" = server ] || [ "$which" = both ]; then
  # The "server": a reduced InceptionResNetV2 (width 1/4, 2 blocks of each kind) at 75x75.
  $g zoo inception_resnet_v2 --input 75 --width 0.25 --repeats 2,2,2 --channels 1 --classes 10 --seed 1 \
    -o "$out/server_init.onnx"
  $g --threads 2 train "$out/server_init.onnx" --train all --epochs 20 --batch 128 --lr 0.1 --nesterov \
    --weight-decay 5e-4 --warmup 200 --augment --seed 1 --checkpoint "$out/server.ckpt.onnx" \
    --log "$out/server.train.jsonl" -o "$out/server.onnx"
  rm -f "$out/server_init.onnx"
fi
t1=$(date +%s)
if [ "$which" = mobile ] || [ "$which" = both ]; then
  # The "mobile": MobileNet v1 (alpha 0.25) at 32x32.
  $g zoo mobilenet_v1 --alpha 0.25 --input 32 --channels 1 --classes 10 --seed 1 -o "$out/mobile_init.onnx"
  $g --threads 2 train "$out/mobile_init.onnx" --train all --epochs 20 --batch 128 --lr 0.1 --nesterov \
    --weight-decay 5e-4 --warmup 200 --augment --seed 1 --checkpoint "$out/mobile.ckpt.onnx" \
    --log "$out/mobile.train.jsonl" -o "$out/mobile.onnx"
  rm -f "$out/mobile_init.onnx"
fi
t2=$(date +%s)
echo "training time: server $((t1 - t0)) s, mobile $((t2 - t1)) s"

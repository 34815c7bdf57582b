#!/usr/bin/env bash
# Regenerates the bundled pretrained pair in models/ from scratch with graft's own trainer on
# Fashion-MNIST (Debian's dataset-fashion-mnist), then rewrites the manifest. Run from the
# project root after scripts/build.sh:   tools/train_bundled.sh [OUT_DIR] [mobile|server|both]
# With "both" the two run one after the other, each on every core: run side by side on 2 cores
# (server on 2 threads, mobile on 1) the server trained at ~230 images/s against 330-650 alone
# (this shared machine's speed varies that much), more than the mobile run gained.
# 10 epochs each keep the whole regeneration within an hour on 2 cores; the first bundled pair
# had 20 epochs each and took ~105 min (server ~60, mobile ~45) for ~1 point more.
# Each run's output goes to OUT_DIR/<model>.train.log, its per-step losses to
# OUT_DIR/<model>.train.jsonl (neither is committed).
set -euo pipefail
out="${1:-models}"; which="${2:-both}"
g=build/graft
mkdir -p "$out"

train_server() {
  local t0; t0=$(date +%s)
  # The "server": a reduced InceptionResNetV2 (width 1/4, 2 blocks of each kind) at 75x75.
  $g zoo inception_resnet_v2 --input 75 --width 0.25 --repeats 2,2,2 --channels 1 --classes 10 --seed 1 \
    -o "$out/server_init.onnx"
  $g --threads 2 train "$out/server_init.onnx" --train all --epochs 10 --batch 128 --lr 0.1 --nesterov \
    --weight-decay 5e-4 --warmup 200 --augment --seed 1 --checkpoint "$out/server.ckpt.onnx" \
    --log "$out/server.train.jsonl" -o "$out/server.onnx"
  rm -f "$out/server_init.onnx" "$out/server.ckpt.onnx" "$out/server.ckpt.onnx.state"
  echo "server training time: $(( $(date +%s) - t0 )) s"
}

train_mobile() {
  local t0; t0=$(date +%s)
  # The "mobile": MobileNet v1 (alpha 0.25) at 56x56 (3/4 of the server's 75, as 224 is of 299).
  $g zoo mobilenet_v1 --alpha 0.25 --input 56 --channels 1 --classes 10 --seed 1 -o "$out/mobile_init.onnx"
  $g --threads 2 train "$out/mobile_init.onnx" --train all --epochs 10 --batch 128 --lr 0.1 \
    --nesterov --weight-decay 5e-4 --warmup 200 --augment --seed 1 --checkpoint "$out/mobile.ckpt.onnx" \
    --log "$out/mobile.train.jsonl" -o "$out/mobile.onnx"
  rm -f "$out/mobile_init.onnx" "$out/mobile.ckpt.onnx" "$out/mobile.ckpt.onnx.state"
  echo "mobile training time: $(( $(date +%s) - t0 )) s"
}

t0=$(date +%s)
case "$which" in
  server) train_server > "$out/server.train.log" 2>&1 ;;
  mobile) train_mobile > "$out/mobile.train.log" 2>&1 ;;
  both)
    train_server > "$out/server.train.log" 2>&1 || { echo "server training failed: see $out/server.train.log" >&2; exit 1; }
    train_mobile > "$out/mobile.train.log" 2>&1 || { echo "mobile training failed: see $out/mobile.train.log" >&2; exit 1; } ;;
  *) echo "usage: $0 [OUT_DIR] [mobile|server|both]" >&2; exit 2 ;;
esac
echo "total wall time: $(( $(date +%s) - t0 )) s" | tee "$out/regen.time"
tools/write_manifest.sh "$out"

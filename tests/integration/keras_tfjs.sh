#!/usr/bin/env bash
# graft's Keras importer against TensorFlow.js, an independent implementation of Keras layers:
#  1. generated functional models covering the supported layers and attributes (same padding at
#     odd sizes and strides, pooling with same, Flatten -> Dense, depth multipliers, nested
#     models, uint8-quantised weights), each read by graft in five containers (TF.js model.json,
#     weights-only HDF5 + --keras-config, full-model HDF5, Keras 3 .keras zip, tf.keras 2.13's
#     .keras zip): outputs equal TensorFlow.js' within 1e-4 relative; layers TF.js lacks against
#     Keras' formulas in PyTorch (tools/keras_torch_reference.py);
#  2. the real, trained Keras 2.2.4 ToyResNet (weights-only HDF5 + JSON) against TensorFlow.js;
#  3. the canonical example from Keras files: MobileNet cut at conv_pad_6 stitched to
#     InceptionResNetV2's tail at block17_20_ac; the hybrid runs in ONNX Runtime as in graft;
#  4. bad Keras input on the command line: exit 2, one line.
# Installs @tensorflow/tfjs into $GRAFT_TFJS_DIR (default ~/.cache/graft-tfjs) and
# onnxruntime-node into $GRAFT_ORT_DIR when missing; fails (never skips) if it cannot.
set -euo pipefail
graft="$1"; root="$(cd "$(dirname "$0")/../.." && pwd)"
data="$root/tests/data/keras"
export GRAFT_TFJS_DIR="${GRAFT_TFJS_DIR:-$HOME/.cache/graft-tfjs}"
export GRAFT_ORT_DIR="${GRAFT_ORT_DIR:-$HOME/.cache/graft-ort}"
for pkg in "$GRAFT_TFJS_DIR:@tensorflow/tfjs" "$GRAFT_ORT_DIR:onnxruntime-node"; do
  dir="${pkg%%:*}"; name="${pkg#*:}"
  if [ ! -d "$dir/node_modules/$name" ]; then
    mkdir -p "$dir"
    (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund "$name" >/dev/null)
  fi
done
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
py=/usr/bin/python3

nchw() {  # x.npy (NHWC) -> xc.npy (NCHW) for graft
  $py -c "import numpy as np, sys; x = np.load(sys.argv[1]); np.save(sys.argv[2], x.transpose(0, 3, 1, 2).copy() if x.ndim == 4 else x)" "$1" "$2"
}
compare() {  # graft.npy (NCHW if 4-D) keras.npy label
  $py - "$1" "$2" "$3" <<'PY'
import sys, numpy as np
g, k = np.load(sys.argv[1]), np.load(sys.argv[2])
if g.ndim == 4: g = g.transpose(0, 2, 3, 1)
if g.shape != k.shape:
    print(f"FAIL {sys.argv[3]}: graft shape {g.shape}, TensorFlow.js {k.shape}"); sys.exit(1)
scale = max(float(np.abs(k).max()), 1e-6); diff = float(np.abs(g - k).max())
ok = diff <= 1e-4 * scale
print(f"{'ok  ' if ok else 'FAIL'} {sys.argv[3]}: max |graft - TensorFlow.js| {diff:.3g} (max |output| {scale:.3g})")
sys.exit(0 if ok else 1)
PY
}

# 1. Generated models in every container.
node "$root/tools/keras_tfjs_models.js" "$t/gen" 2>&1 | grep -v -e '^=*$' -e 'Hi, looks like' -e '^$' || true
# Layers and attributes TF.js lacks (groups, ReLU threshold, Subtract, Normalization, bilinear
# UpSampling2D, keepdims, the scaled-residual Lambda and CustomScaleLayer, …): expected outputs
# from Keras' formulas written with PyTorch's functional ops.
$py "$root/tools/keras_torch_reference.py" "$t/gen"
fails=0; n=0
for d in "$t"/gen/*/; do
  d=${d%/}; m=$(basename "$d")
  $py "$root/tools/keras_containers.py" "$d"
  nchw "$d/x.npy" "$d/xc.npy"
  for form in "model.json" "weights.h5 --keras-config $d/config.json" "full.h5" "model.keras" "tf213.keras"; do
    set -- $form
    file="$1"; shift
    n=$((n + 1))
    if ! "$graft" run "$d/$file" "$@" --input "$d/xc.npy" --output "$d/g.npy" >/dev/null 2>"$t/err"; then
      echo "FAIL $m/$file: $(tail -1 "$t/err")"; fails=$((fails + 1)); continue
    fi
    if [ "$file" = model.keras ] && grep -q '"hard_sigmoid"' "$d/config.json"; then
      # A .keras archive is Keras 3, whose hard_sigmoid is relu6(x + 3) / 6, not TF.js' (and
      # Keras 2's) clip(0.2 x + 0.5): graft must give a different answer here.
      if $py - "$d/g.npy" "$d/y.npy" <<'PY'; then echo "ok   $m/$file: Keras 3 hard_sigmoid differs from Keras 2's, as it should"; else echo "FAIL $m/$file: Keras 3 semantics not applied"; fails=$((fails + 1)); fi
import sys, numpy as np
g, k = np.load(sys.argv[1]), np.load(sys.argv[2])
if g.ndim == 4: g = g.transpose(0, 2, 3, 1)
sys.exit(0 if float(np.abs(g - k).max()) > 1e-3 else 1)
PY
      continue
    fi
    compare "$d/g.npy" "$d/y.npy" "$m/$file" || fails=$((fails + 1))
  done
done

# bfloat16 weights (Keras 3): graft reads them as the rounded float32 values, exactly.
d="$t/gen/extras"
"$graft" run "$d/bf16.keras" --input "$d/xc.npy" --output "$d/b.npy" >/dev/null
"$graft" run "$d/bf16_ref.keras" --input "$d/xc.npy" --output "$d/r.npy" >/dev/null
n=$((n + 1))
$py - "$d/b.npy" "$d/r.npy" "$d/y.npy" <<'PY' || fails=$((fails + 1))
import sys, numpy as np
b, r, y = (np.load(p) for p in sys.argv[1:])
ok = np.array_equal(b, r) and 0 < float(np.abs(b - y).max()) < 0.05 * float(np.abs(y).max())
print(f"{'ok  ' if ok else 'FAIL'} extras/bf16.keras: equals the float32 archive of the rounded weights; {float(np.abs(b - y).max()):.3g} from full precision")
sys.exit(0 if ok else 1)
PY

# 2. The real trained ToyResNet: TensorFlow.js runs it converted to model.json, graft the files.
mkdir -p "$t/toy"
$py "$root/tools/keras_containers.py" --to-tfjs "$data/kotlindl_toyresnet_weights.h5" "$data/kotlindl_toyresnet.json" "$t/toy"
$py -c "import numpy as np; np.save('$t/toy/x.npy', np.random.RandomState(0).rand(4, 28, 28, 1).astype('float32'))"
node "$root/tools/keras_tfjs_models.js" --predict "$t/toy" 2>&1 | grep -v -e '^=*$' -e 'Hi, looks like' -e '^$' || true
nchw "$t/toy/x.npy" "$t/toy/xc.npy"
n=$((n + 1))
"$graft" run "$data/kotlindl_toyresnet_weights.h5" --keras-config "$data/kotlindl_toyresnet.json" \
  --input "$t/toy/xc.npy" --output "$t/toy/g.npy" >/dev/null
compare "$t/toy/g.npy" "$t/toy/y.npy" "ToyResNet (Keras 2.2.4, trained)" || fails=$((fails + 1))

# 3. The canonical example from Keras files, run by ONNX Runtime. Keras' initialisation (the
# configs carry no weights) leaves a near-uniform softmax, so the logits are compared too (the
# hybrid cut before its softmax, by graft itself).
"$graft" stitch --head "$data/kotlindl_mobilenet.json@conv_pad_6" \
  --tail "$data/kotlindl_inceptionresnetv2.json@block17_20_ac" -o "$t/hybrid.onnx" >/dev/null 2>"$t/err" ||
  { echo "FAIL stitch from Keras files: $(tail -1 "$t/err")"; exit 1; }
"$graft" cut "$t/hybrid.onnx" --at "tensor:b/predictions/logits" --head "$t/logits.onnx" >/dev/null
$py -c "import numpy as np; np.save('$t/hx.npy', np.random.RandomState(1).randn(1, 3, 224, 224).astype('float32'))"
for m in hybrid:predictions logits:b/predictions/logits; do
  model=${m%%:*}; out=${m#*:}
  "$graft" run "$t/$model.onnx" --input "$t/hx.npy" --output "$out=$t/hg.npy" >/dev/null
  node "$root/tools/ort_run.js" "$t/$model.onnx" --input "input_1=$t/hx.npy" --output "$out=$t/ho.npy"
  n=$((n + 1))
  $py - "$t/hg.npy" "$t/ho.npy" "$model" <<'PY' || fails=$((fails + 1))
import sys, numpy as np
g, o = np.load(sys.argv[1]), np.load(sys.argv[2])
scale = max(float(np.abs(o).max()), 1e-12); diff = float(np.abs(g - o).max())
ok = g.shape == o.shape and diff <= 1e-4 * scale and float(o.std()) > 0
print(f"{'ok  ' if ok else 'FAIL'} canonical {sys.argv[3]} from Keras files: graft vs ONNX Runtime max difference {diff:.3g} (max |output| {scale:.3g})")
sys.exit(0 if ok else 1)
PY
done

# The canonical cut and advice from Keras files.
n=$((n + 1))
if "$graft" cut "$data/kotlindl_mobilenet.json" --at conv_pad_6 --head "$t/mh.onnx" 2>/dev/null | grep -q "conv_pad_6 (N, 256, 29, 29)"; then
  echo "ok   MobileNet (Keras config) cut at conv_pad_6: 29x29x256"
else
  echo "FAIL MobileNet (Keras config) cut at conv_pad_6"; fails=$((fails + 1))
fi
n=$((n + 1))
"$graft" cuts "$data/kotlindl_inceptionresnetv2.json" --near activation_157 > "$t/advice" 2>/dev/null
if grep -q "^594  block17_20_ac" "$t/advice" && grep -q "^617  mixed_7a" "$t/advice"; then
  echo "ok   InceptionResNetV2 (Keras config): advice at activation_157 names block17_20_ac and mixed_7a"
else
  echo "FAIL InceptionResNetV2 advice at activation_157:"; cat "$t/advice"; fails=$((fails + 1))
fi

# 4. Bad Keras input on the command line.
head -c 3000 "$data/kotlindl_toyresnet_weights.h5" > "$t/trunc.h5"
for args in "$t/trunc.h5 --keras-config $data/kotlindl_toyresnet.json" "$data/kotlindl_toyresnet_weights.h5" \
            "$data/README.md" "$data/kotlindl_toyresnet_weights.h5 --keras-config $data/hls4ml_jetTagger_Conv2D_Small.json"; do
  n=$((n + 1))
  set +e; "$graft" summary $args >/dev/null 2>"$t/err"; rc=$?; set -e
  if [ "$rc" != 2 ] || [ "$(wc -l < "$t/err")" != 1 ] || ! grep -q '^graft: error: ' "$t/err"; then
    echo "FAIL summary $args: exit $rc, stderr: $(cat "$t/err")"; fails=$((fails + 1))
  fi
done
# Bit flips in a .keras archive and a TF.js model: exit 0 or 2, never a crash (or exit 1).
for f in "$t/gen/conv/model.keras" "$t/gen/merge/model.json"; do
  bad=0
  for i in $(seq 1 30); do
    cp "$f" "$t/flip"; [ "${f##*.}" = json ] && cp "$(dirname "$f")/weights.bin" "$t/weights.bin"
    $py - "$t/flip" "$i" <<'PY'
import sys, random
p, seed = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); r = random.Random(seed)
for _ in range(r.randint(1, 4)):
    k = r.randrange(len(b)); b[k] ^= 1 << r.randrange(8)
open(p, "wb").write(b)
PY
    set +e; "$graft" summary "$t/flip" >/dev/null 2>"$t/err"; rc=$?; set -e
    if [ "$rc" != 0 ] && { [ "$rc" != 2 ] || [ "$(wc -l < "$t/err")" != 1 ]; }; then
      echo "FAIL bit flip $i of $(basename "$f"): exit $rc: $(head -c 300 "$t/err")"; bad=$((bad + 1))
    fi
  done
  n=$((n + 1))
  if [ "$bad" = 0 ]; then echo "ok   30 bit-flipped copies of $(basename "$f"): exit 0 or 2"; else fails=$((fails + 1)); fi
done
echo "$((n - fails)) passed, $fails failed"
[ "$fails" = 0 ]

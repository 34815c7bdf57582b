#!/usr/bin/env bash
# Data-parallel graft train on loopback (docs/DISTRIBUTED.md):
#  1. equivalence: 2 ranks x batch 64 give the weights of 1 rank x batch 128, within 1e-5 relative,
#     for an adapter without BatchNorm and one with (synchronised) BatchNorm;
#  2. the same seed gives the same run (bit for bit);
#  3. a rank that never joins, and a rank killed mid-training: the other stops within the timeout
#     with one line naming it, and writes nothing;
#  4. torchrun (Debian's python3-torch) launches 2 workers with the c10d rendezvous; the log
#     records the world size and the communication per step;
#  5. graft eval and graft search on 2 ranks report what one process does; a search whose rank
#     is killed stops naming it and resumes in one process to the uninterrupted result.
#   tests/integration/distributed.sh GRAFT MODELS_DIR
set -euo pipefail
graft=$1
models=$2
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

free_port() { /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The largest, over the adapter's tensors, of max |a - b| / max |a| (the difference relative to the
# tensor's scale: elementwise ratios blow up at weights that are near zero by chance).
compare() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys, onnx, numpy as np
from onnx import numpy_helper
a = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[1]).graph.initializer}
b = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
worst = 0.0
for k, v in a.items():
    if k.startswith(("a/", "b/")) or v.dtype.kind != "f":
        continue
    v = v.astype(np.float64)
    d = np.max(np.abs(v - b[k])) / max(np.max(np.abs(v)), 1e-12)
    worst = max(worst, float(d))
print("%.3g" % worst)
PY
}

# Two ranks by hand (the variables torchrun sets); extra arguments go to both.
two_ranks() {  # two_ranks OUT [ARGS...]
  local out=$1; shift
  local port; port=$(free_port)
  RANK=0 WORLD_SIZE=2 LOCAL_RANK=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$graft" train "$@" --batch 64 -o "$out" --no-progress >"$work/r0.out" 2>"$work/r0.err" &
  local p0=$!
  RANK=1 WORLD_SIZE=2 LOCAL_RANK=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$graft" train "$@" --batch 64 -o "$out.rank1" --no-progress >"$work/r1.out" 2>"$work/r1.err" &
  local p1=$!
  wait $p0 || { cat "$work/r0.err" >&2; fail "rank 0 failed"; }
  wait $p1 || { cat "$work/r1.err" >&2; fail "rank 1 failed"; }
  [ ! -e "$out.rank1" ] || fail "rank 1 wrote the model"
}

common=(--limit 512 --epochs 2 --seed 5)
for adapter in "conv:k=1,c=520,bias" "conv:k=1,c=520;bn"; do
  h="$work/h.onnx"
  "$graft" stitch --head "$models/mobile.onnx@conv_dw_12_relu" --tail "$models/server.onnx@block8_2" \
    --adapter "$adapter" -o "$h" >/dev/null
  "$graft" train "$h" "${common[@]}" --batch 128 -o "$work/one.onnx" --no-progress >/dev/null 2>"$work/one.err" ||
    { cat "$work/one.err" >&2; fail "one-process run"; }
  two_ranks "$work/two.onnx" "$h" "${common[@]}" --log "$work/two.jsonl"
  d=$(compare "$work/one.onnx" "$work/two.onnx")
  echo "$adapter: 2 ranks x 64 vs 1 rank x 128, max relative difference $d"
  /usr/bin/python3 -c "import sys; sys.exit(0 if $d <= 1e-5 else 1)" || fail "$adapter: weights differ by $d"
  grep -q '"world":2' "$work/two.jsonl" || fail "the log does not record the world size"
  grep -q '"comm_bytes":[1-9]' "$work/two.jsonl" || fail "the log does not record the bytes all-reduced"
  [ "$(wc -l <"$work/two.jsonl")" -eq 8 ] || fail "expected 8 steps (2 epochs x 256 images per rank / 64)"
done

# Resuming with another world size: checkpoints of 2 epochs (1 rank x 128, 2 ranks x 64), each
# resumed for a third epoch by the other world size, reach the weights of 1 rank resuming its own.
ck=(--limit 512 --seed 5 --no-progress)
"$graft" train "$h" "${ck[@]}" --epochs 2 --batch 128 --checkpoint "$work/ck1.onnx" -o "$work/ck1_out.onnx" >/dev/null 2>&1
"$graft" train "$h" "${ck[@]}" --epochs 3 --batch 128 --resume "$work/ck1.onnx" -o "$work/ref3.onnx" >/dev/null 2>&1
two_ranks "$work/ck2_out.onnx" "$h" --limit 512 --seed 5 --epochs 2 --checkpoint "$work/ck2.onnx"
"$graft" train "$h" "${ck[@]}" --epochs 3 --batch 128 --resume "$work/ck2.onnx" -o "$work/from2.onnx" >/dev/null 2>"$work/r.err" ||
  { cat "$work/r.err" >&2; fail "1 rank resuming 2 ranks' checkpoint"; }
two_ranks "$work/from1.onnx" "$h" --limit 512 --seed 5 --epochs 3 --resume "$work/ck1.onnx"
for f in from2 from1; do
  d=$(compare "$work/ref3.onnx" "$work/$f.onnx")
  echo "resumed with another world size ($f): max relative difference $d"
  /usr/bin/python3 -c "import sys; sys.exit(0 if $d <= 1e-5 else 1)" || fail "resume $f: weights differ by $d"
done

# graft eval on 2 ranks: each scores half the test split; rank 0 reports the whole split's figures,
# exactly what one process reports.
"$graft" eval "$work/one.onnx" --limit 1000 --json >"$work/eval1.json" 2>/dev/null || fail "eval, one process"
port=$(free_port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$graft" eval "$work/one.onnx" --limit 1000 --json \
    >"$work/eval2.$r.json" 2>"$work/eval2.$r.err" &
  pids+=($!)
done
wait "${pids[@]: -2:1}" || { cat "$work/eval2.0.err" >&2; fail "eval rank 0"; }
wait "${pids[@]: -1:1}" || { cat "$work/eval2.1.err" >&2; fail "eval rank 1"; }
[ ! -s "$work/eval2.1.json" ] || fail "eval rank 1 printed a result"
/usr/bin/python3 - "$work/eval1.json" "$work/eval2.0.json" <<'PY' || fail "2-rank eval differs from one process"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
assert b["ranks"] == 2 and len(a["models"]) == len(b["models"]) == 3, (a.keys(), b.get("ranks"))
for x, y in zip(a["models"], b["models"]):
    for k in ("count", "top1", "top5", "confusion", "per_class", "model"):
        assert x[k] == y[k], (x["model"], k, x[k], y[k])
PY
echo "eval on 2 ranks: the figures of one process (3 models: hybrid and both sources)"

# The same seed, the same run.
two_ranks "$work/again.onnx" "$h" "${common[@]}"
d=$(compare "$work/two.onnx" "$work/again.onnx")
[ "$d" = 0 ] || fail "two runs with the same seed differ by $d"
echo "same seed: identical weights"

# A rank that never joins.
port=$(free_port)
start=$(date +%s)
if RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$graft" train "$h" "${common[@]}" \
    --dist-timeout 3 -o "$work/lonely.onnx" --no-progress >/dev/null 2>"$work/lonely.err"; then
  fail "rank 0 trained alone"
fi
[ "$(wc -l <"$work/lonely.err")" -eq 1 ] || { cat "$work/lonely.err" >&2; fail "not one line"; }
grep -q "rank 1 did not join within 3 s" "$work/lonely.err" || { cat "$work/lonely.err" >&2; fail "rank 1 not named"; }
[ $(( $(date +%s) - start )) -lt 60 ] || fail "took more than a minute to give up"
[ ! -e "$work/lonely.onnx" ] || fail "wrote a model"
echo "never joined: $(cat "$work/lonely.err")"

# A rank killed mid-training: the survivor stops with one line naming it.
port=$(free_port)
long=(--limit 4096 --epochs 50 --seed 5 --dist-timeout 20 --no-progress --log "$work/killed.jsonl")
RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$graft" train "$h" "${long[@]}" --batch 64 \
  -o "$work/survivor.onnx" >/dev/null 2>"$work/survivor.err" &
p0=$!; pids+=($p0)
RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$graft" train "$h" "${long[@]}" --batch 64 \
  -o "$work/victim.onnx" >/dev/null 2>&1 &
p1=$!; pids+=($p1)
for _ in $(seq 600); do [ -s "$work/killed.jsonl" ] && break; sleep 0.1; done
[ -s "$work/killed.jsonl" ] || fail "training did not start"
{ kill -9 $p1; wait $p1; } 2>/dev/null || true
start=$(date +%s)
if wait $p0; then fail "rank 0 finished without rank 1"; fi
[ $(( $(date +%s) - start )) -le 40 ] || fail "rank 0 took more than the timeout to stop"
# One error line (after the run's info lines), naming the rank that died.
[ "$(grep -c '^graft: error:' "$work/survivor.err")" -eq 1 ] || { cat "$work/survivor.err" >&2; fail "not one error line"; }
tail -n 1 "$work/survivor.err" | grep -q "rank 1 stopped" || { cat "$work/survivor.err" >&2; fail "rank 1 not named"; }
[ ! -e "$work/survivor.onnx" ] || fail "wrote a model"
echo "killed rank: $(tail -n 1 "$work/survivor.err")"

# torchrun, as users launch PyTorch jobs. (Debian's torchrun 1.13 on Python 3.11 needs --tee and
# --redirects as 1 or 2: docs/DISTRIBUTED.md.)
port=$(free_port)
OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" \
  --tee 2 --redirects 1 --log_dir "$work/torchrun_logs" --no_python \
  "$graft" train "$h" "${common[@]}" --batch 64 -o "$work/torchrun.onnx" --log "$work/torchrun.jsonl" --no-progress \
  >"$work/torchrun.out" 2>"$work/torchrun.err" || { cat "$work/torchrun.err" >&2; fail "torchrun"; }
[ -s "$work/torchrun.onnx" ] || fail "torchrun's rank 0 wrote no model"
grep -q '"world":2' "$work/torchrun.jsonl" || fail "torchrun: not 2 ranks"
d=$(compare "$work/two.onnx" "$work/torchrun.onnx")
[ "$d" = 0 ] || fail "torchrun's run differs from the hand-launched one by $d"
echo "torchrun: 2 workers, the same weights as the hand-launched run"

# torchrun's elastic restart: a worker killed after the first epoch's checkpoint; torchrun
# (--max_restarts 1) starts both again and they continue from the checkpoint, reaching the
# weights of a run never interrupted.
el=(--limit 8192 --epochs 4 --seed 5 --batch 64 --no-progress)
port=$(free_port)
OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" \
  --tee 2 --redirects 1 --log_dir "$work/el_logs0" --no_python \
  "$graft" train "$h" "${el[@]}" --checkpoint "$work/el0.ckpt.onnx" -o "$work/el0.onnx" >/dev/null 2>&1 ||
  fail "torchrun, uninterrupted"
port=$(free_port)
OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" --max_restarts 1 \
  --tee 2 --redirects 1 --log_dir "$work/el_logs" --no_python \
  "$graft" train "$h" "${el[@]}" --checkpoint "$work/el.ckpt.onnx" -o "$work/el.onnx" \
  >"$work/el.out" 2>"$work/el.err" &
tr=$!; pids+=($tr)
for _ in $(seq 1200); do [ -e "$work/el.ckpt.onnx" ] && break; sleep 0.05; done
[ -e "$work/el.ckpt.onnx" ] || fail "no checkpoint after the first epoch"
victim=$(pgrep -f -- "-o $work/el.onnx" | while read -r p; do
  [ "$(tr '\0' '\n' </proc/$p/environ 2>/dev/null | grep -x 'RANK=1')" ] && echo "$p"; done | head -n 1)
[ -n "$victim" ] || fail "rank 1's process not found"
kill -9 "$victim" || fail "rank 1 ended before it could be killed"
wait $tr || { cat "$work/el.err" >&2; fail "torchrun did not recover"; }
grep -q "restart 1: resuming from" "$work/el.err" || { cat "$work/el.err" >&2; fail "the restarted workers did not resume"; }
d=$(compare "$work/el0.onnx" "$work/el.onnx")
echo "torchrun --max_restarts 1, rank 1 killed after epoch 1: max relative difference $d from a run never interrupted"
/usr/bin/python3 -c "import sys; sys.exit(0 if $d <= 1e-6 else 1)" || fail "the restarted run differs by $d"
# graft search on 2 ranks (torchrun): candidates round-robin, the result of one process with the
# same threads per process — every held-out and test score, the front, the hybrid --write-best
# writes.
search=(--mobile "$models/mobile.onnx" --server "$models/server.onnx" --mobile-cuts conv_dw_6_relu,conv_dw_12_relu
  --server-cuts block17_2_ac,mixed_7a --limit 1400 --holdout 300 --min-images 256 --max-images 768 --batch 64
  --test-limit 300)
"$graft" --threads 1 search "${search[@]}" -o "$work/s1.json" --write-best "$work/s1.onnx" >/dev/null 2>"$work/s1.err" ||
  { cat "$work/s1.err" >&2; fail "search, one process"; }
port=$(free_port)
torchrun --nproc_per_node 2 --rdzv_backend c10d --rdzv_endpoint "127.0.0.1:$port" \
  --tee 2 --redirects 1 --log_dir "$work/search_logs" --no_python \
  "$graft" --threads 1 search "${search[@]}" -o "$work/s2.json" --write-best "$work/s2.onnx" \
  >"$work/s2.out" 2>"$work/s2.err" || { cat "$work/s2.err" >&2; fail "search on 2 ranks"; }
same_search() {  # same_search A.json B.json WORLD_OF_B
  /usr/bin/python3 - "$@" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
assert b["ranks"] == int(sys.argv[3]) and b["complete"], (b["ranks"], b["complete"])
assert a["front"] == b["front"] and a["baselines"] == b["baselines"], (a["front"], b["front"])
assert len(a["candidates"]) == len(b["candidates"]) == 8
for x, y in zip(a["candidates"], b["candidates"]):
    ex = [(e["rung"], e["images"], e["holdout_top1"]) for e in x["evaluations"]]
    ey = [(e["rung"], e["images"], e["holdout_top1"]) for e in y["evaluations"]]
    assert ex == ey and x.get("test_top1") == y.get("test_top1"), (x["id"], ex, ey)
PY
}
same_search "$work/s1.json" "$work/s2.json" 2 || fail "the 2-rank search differs from one process"
cmp -s "$work/s1.onnx" "$work/s2.onnx" || fail "the 2-rank search wrote another best hybrid"
grep -q "rank 1)" "$work/s2.err" || fail "no candidate was trained on rank 1"
echo "search on 2 ranks: every score and the best hybrid of one process"

# A search whose rank 1 is killed: rank 0 stops naming it and leaves its state, which one process
# resumes to the uninterrupted result.
port=$(free_port)
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port "$graft" --threads 1 search "${search[@]}" --no-test \
    --dist-timeout 5 -o "$work/sk.json$([ $r = 1 ] && echo .rank1)" >/dev/null 2>"$work/sk.$r.err" &
  pids+=($!)
done
p0=${pids[-2]}; p1=${pids[-1]}
for _ in $(seq 1200); do [ -e "$work/sk.json" ] && break; sleep 0.01; done
[ -e "$work/sk.json" ] || fail "the search recorded no evaluation"
{ kill -9 $p1; wait $p1; } 2>/dev/null || true
if wait $p0; then fail "rank 0 finished the search without rank 1"; fi
[ "$(grep -c '^graft: error:' "$work/sk.0.err")" -eq 1 ] || { cat "$work/sk.0.err" >&2; fail "search: not one error line"; }
tail -n 1 "$work/sk.0.err" | grep -q "rank 1 stopped" || { cat "$work/sk.0.err" >&2; fail "search: rank 1 not named"; }
[ ! -e "$work/sk.json.rank1" ] || fail "rank 1 wrote the search's state"
"$graft" --threads 1 search "${search[@]}" --no-test -o "$work/s1n.json" >/dev/null 2>&1 || fail "search --no-test"
"$graft" --threads 1 search "${search[@]}" --no-test -o "$work/sk.json" --resume >/dev/null 2>"$work/skr.err" ||
  { cat "$work/skr.err" >&2; fail "resuming the 2-rank search in one process"; }
same_search "$work/s1n.json" "$work/sk.json" 1 || fail "the resumed search differs from one never interrupted"
echo "search with a killed rank: $(tail -n 1 "$work/sk.0.err"); resumed in one process to the same result"
echo "ok"

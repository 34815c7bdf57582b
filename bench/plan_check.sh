#!/usr/bin/env bash
# Checks graft plan against measurement on loopback: profiles MODEL (this machine is both the
# device and the server), plans for BANDWIDTH, then, at three split points (about a quarter, half
# and three quarters of the model's MACs on the device), splits the model, serves the server half
# and runs the device half with `graft infer --limit-rate BANDWIDTH`, one image per request, and
# compares the measured median end-to-end latency with the plan's prediction.
#   bench/plan_check.sh MODEL [BANDWIDTH] [OUT_DIR] [REQUESTS]
#   (defaults: 100Mbit/s, build/plan_check, 40)
# The plan's rtt is the loopback's own, measured first with the model split at its last cut point
# (a payload of a few bytes), in the same pattern as the checks (one request after each device
# run, no rate limit): the median of each request's round trip minus the server's receipt-to-
# reply time. On this machine that is 0.5-1.5 ms, several times an empty ServerLive call made back
# to back (~0.1 ms): gRPC's threads fall asleep while the device computes and wake for each call.
# Prints one row per split point and exits 1 if any prediction is off by more than 20 %.
set -euo pipefail
cd "$(dirname "$0")/.."
model=$1
bandwidth=${2:-100Mbit/s}
out=${3:-build/plan_check}
requests=${4:-40}
graft=build/graft
mkdir -p "$out"
server=""
trap '[ -n "$server" ] && kill $server 2>/dev/null; wait 2>/dev/null || true' EXIT

$graft profile "$model" -o "$out/profile.json" --runs 100 >&2
# A preprocessed input batch of REQUESTS random images, at the model's input shape.
/usr/bin/python3 - "$out/profile.json" "$out/x.npy" "$requests" <<'PY'
import json, sys
import numpy as np
p = json.load(open(sys.argv[1]))
shape = [int(sys.argv[3])] + p["input"]["shape"][1:]
np.save(sys.argv[2], np.random.default_rng(0).random(shape, dtype=np.float32))
PY

serve() {  # serve FILE: starts graft serve on a free port; sets $server and $port
  $graft serve "$1" --listen 127.0.0.1:0 >"$out/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 150); do grep -q listening "$out/serve.log" && break; sleep 0.2; done
  port=$(grep -o '127.0.0.1:[0-9]*' "$out/serve.log" | head -1)
  [ -n "$port" ] || { cat "$out/serve.log" >&2; exit 1; }
}
stop() { kill "$server"; wait "$server" 2>/dev/null || true; server=""; }

# Three split points by device MACs (a plan at any rtt lists them all), and the last cut point.
$graft plan "$model" --device "$out/profile.json" --server "$out/profile.json" --bandwidth "$bandwidth" --json \
  >"$out/plan0.json"
mapfile -t points < <(/usr/bin/python3 - "$out/plan0.json" <<'PY'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["plan"]["rows"] if r["kind"] == "split"]
total = rows[0]["device_macs"] + rows[0]["server_macs"]
for q in (0.25, 0.5, 0.75):
    print(min(rows, key=lambda r: abs(r["device_macs"] - q * total))["tensor"])
print(rows[-1]["tensor"])
PY
)
last=${points[3]}
points=("${points[@]:0:3}")

# The loopback's round trip for ModelInfer, split at the last cut point.
$graft split "$model" --at "$last" --device "$out/dev.onnx" --server "$out/srv.onnx" >/dev/null
serve "$out/srv.onnx"
rtt_ms=$($graft infer "$out/dev.onnx" --server "$port" --input "$out/x.npy" --batch 1 --stats --json --top 0 |
           /usr/bin/python3 -c 'import json,sys; print(round(json.load(sys.stdin)["stats"]["network_p50_ms"], 4))')
stop
rtt="${rtt_ms}ms"
$graft plan "$model" --device "$out/profile.json" --server "$out/profile.json" --bandwidth "$bandwidth" \
  --rtt "$rtt" --json >"$out/plan.json"
echo "model $model, bandwidth $bandwidth, loopback rtt $rtt, $requests requests of one image per split point"
printf '%-40s %12s %12s %12s %8s\n' "split at" "bytes" "predicted" "measured" "ratio"
fail=0
for t in "${points[@]}"; do
  $graft split "$model" --at "$t" --device "$out/dev.onnx" --server "$out/srv.onnx" >/dev/null
  serve "$out/srv.onnx"
  $graft infer "$out/dev.onnx" --server "$port" --input "$out/x.npy" --batch 1 --limit-rate "$bandwidth" \
    --stats --json --top 0 >"$out/infer.json"
  stop
  line=$(/usr/bin/python3 - "$out/plan.json" "$out/infer.json" "$t" <<'PY'
import json, sys
plan = json.load(open(sys.argv[1]))["plan"]
row = next(r for r in plan["rows"] if r.get("tensor") == sys.argv[3] and r["kind"] == "split")
stats = json.load(open(sys.argv[2]))["stats"]
measured = stats["total_p50_ms"]
ratio = measured / row["total_ms"]
print(f"{sys.argv[3][:40]:40} {row['bytes']:12d} {row['total_ms']:9.3f} ms {measured:9.3f} ms {ratio:8.3f}",
      "ok" if abs(ratio - 1) <= 0.2 else "OFF")
PY
)
  echo "$line"
  case "$line" in *OFF) fail=1 ;; esac
done
exit $fail

#!/usr/bin/env bash
# Split-deployment benchmark on loopback: graft serve + graft infer on the bundled hybrid.
# Run from the project root after scripts/build.sh:   bench/serve.sh [OUT_DIR]
# Uses build/demo/hybrid.onnx (the trained hybrid scripts/demo.sh writes) if it is there, else
# stitches the bundled pair with the default adapter (untrained: the speed is the same).
# Prints a Markdown table: requests/s, latency p50/p99 and the overhead per request (latency
# minus the server's model compute) at concurrency 1, 8 and 32 (batch 1), then bytes per image
# and test accuracy for each codec. The client and the server share this machine's cores.
set -euo pipefail
out="${1:-build/bench-serve}"
g=build/graft
requests="${REQUESTS:-200}"
mkdir -p "$out"

hybrid=build/demo/hybrid.onnx
if [ ! -f "$hybrid" ]; then
  hybrid="$out/hybrid.onnx"
  $g stitch --head models/mobile.onnx@conv_pad_6 --tail models/server.onnx@mixed_6a -o "$hybrid" >/dev/null
fi
$g split "$hybrid" --device "$out/dev.onnx" --server "$out/srv.onnx" >/dev/null

$g serve "$out/srv.onnx" --listen 127.0.0.1:0 --threads 1 > "$out/serve.log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
port=""
for _ in $(seq 600); do
  port=$(grep -ao 'listening on 127.0.0.1:[0-9]*' "$out/serve.log" | cut -d: -f2 || true)
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "serve did not start: $(cat "$out/serve.log")" >&2; exit 1; }
infer="$g --quiet infer $out/dev.onnx --server 127.0.0.1:$port --data fashion-mnist"

echo "hybrid: $hybrid; server half on 1 thread; $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) cores"
echo
echo "| concurrency | requests | requests/s | p50 ms | p99 ms | overhead p50 us | overhead p99 us | in-handler overhead p50 us | empty call p50 us |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in 1 8 32; do
  $infer --limit 1 --batch 1 --concurrency "$c" --requests "$requests" --json > "$out/load_$c.json"
  /usr/bin/python3 - "$out/load_$c.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {j['concurrency']} | {j['requests']} | {j['requests_per_s']:.0f} | {j['p50_ms']:.3f} | {j['p99_ms']:.3f} | "
      f"{j['overhead_p50_us']:.0f} | {j['overhead_p99_us']:.0f} | {j['handler_overhead_p50_us']:.0f} | "
      f"{j['empty_call_p50_us']:.0f} |")
PY
done
echo
echo "| codec | bytes/image sent | request bytes/image | input PNG bytes/image | test top-1 |"
echo "| --- | ---: | ---: | ---: | ---: |"
for codec in fp32 fp16 int8 "int8 --zstd" "fp16 --zstd"; do
  # shellcheck disable=SC2086
  $infer --batch 32 --codec $codec --stats --json > "$out/codec.json"
  /usr/bin/python3 - "$out/codec.json" "$codec" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); s = j["stats"]
print(f"| {sys.argv[2].replace(' --', ' + ')} | {s['bytes_per_image']:.0f} | {s['request_bytes_per_image']:.0f} | "
      f"{s.get('png_bytes_per_image', 0):.0f} | {100 * j['top1']:.2f}% |")
PY
done

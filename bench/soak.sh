#!/usr/bin/env bash
# graft serve under full load for a while: rounds of `graft infer --concurrency 8` back to back
# against the bundled server model's tail (cut at mixed_6a, as tests/serve does), the server's
# resident memory sampled after each round.
#   bench/soak.sh [MINUTES] [OUT_DIR]      (default 10 minutes, build/soak)
# Prints one row per round (seconds since the start, requests/s, latency p50/p99, errors, server
# RSS) and, over the rounds after the first minute (warm-up: the allocator's arenas and gRPC's
# buffers fill), the RSS growth, the growth over the second half alone (a leak keeps growing),
# and the spread of p99. The growth from the second round on is printed too.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
out=${2:-build/soak}
graft=build/graft
mkdir -p "$out"
$graft cut models/server.onnx --at mixed_6a --head "$out/head.onnx" --tail "$out/tail.onnx" >/dev/null
$graft serve "$out/tail.onnx" --listen 127.0.0.1:0 >"$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q listening "$out/serve.log" && break; sleep 0.2; done
port=$(grep -o '127.0.0.1:[0-9]*' "$out/serve.log" | head -1)
[ -n "$port" ] || { cat "$out/serve.log" >&2; exit 1; }

rss() { awk '/VmRSS/ {print $2 / 1024}' "/proc/$server/status"; }
start=$(date +%s)
end=$(( start + minutes * 60 ))
round=0
: >"$out/rounds.tsv"
printf 'round\ts\trequests/s\tp50 ms\tp99 ms\terrors\tserver RSS MiB\n'
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  line=$($graft infer "$out/head.onnx" --server "$port" --model tail --data fashion-mnist --limit 8 --batch 8 \
           --concurrency 8 --requests 150 2>&1 | grep 'clients x' || true)
  rps=$(sed -n 's/.*: \([0-9.]*\) requests\/s.*/\1/p' <<<"$line")
  p50=$(sed -n 's/.*latency p50 \([0-9.]*\) ms.*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*latency p50 [0-9.]* ms, p99 \([0-9.]*\) ms.*/\1/p' <<<"$line")
  errors=$(sed -n 's/.* \([0-9]*\) errors$/\1/p' <<<"$line")
  [ -n "$rps" ] || { echo "round $round: no result: $line" >&2; errors=failed; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%.1f\n' "$round" "$(( $(date +%s) - start ))" "$rps" "$p50" "$p99" "$errors" "$(rss)" | tee -a "$out/rounds.tsv"
done
/usr/bin/python3 - "$out/rounds.tsv" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
errors = sum(0 if r[5] == "0" else 1 for r in rows)
warm = [r for r in rows if int(r[1]) > 60] or rows[1:] or rows
rss = [float(r[6]) for r in warm]
p99 = sorted(float(r[4]) for r in warm if r[4])
def growth(a, b):
    return f"{a:.1f} -> {b:.1f} MiB ({100 * (b - a) / a:+.1f} %)"
print(f"{len(rows)} rounds in {rows[-1][1]} s; rounds with errors: {errors}")
print(f"server RSS after the first minute (round {warm[0][0]} on): {growth(rss[0], rss[-1])}, max {max(rss):.1f}")
half = rss[len(rss) // 2:]
print(f"  over the second half alone: {growth(half[0], half[-1])}")
if len(rows) > 1:
    print(f"  from round 2 on: {growth(float(rows[1][6]), float(rows[-1][6]))}")
if p99:
    print(f"p99 after the first minute: min {p99[0]:.1f}, median {p99[len(p99) // 2]:.1f}, "
          f"p90 of rounds {p99[int(0.9 * (len(p99) - 1))]:.1f}, max {p99[-1]:.1f} ms")
sys.exit(1 if errors else 0)
PY

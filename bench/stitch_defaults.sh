#!/usr/bin/env bash
# Do graft's defaults work without a search? For each cut pair of the bundled models: `graft stitch`
# with its default adapter, `graft train` with its defaults for 3 epochs, `graft eval` on the test
# split. Prints one row per pair against both models and exits 1 if a pair is not above the mobile
# model, or is more than 1.5 points under the server model (docs/SEARCH.md, "Defaults").
#   bench/stitch_defaults.sh [OUT_DIR] [MOBILE_CUT:SERVER_CUT ...]
#   (defaults: build/stitch_defaults and seven pairs of six spatial ratios, none the demo's; ~25 min)
# Extra arguments for every `graft train` can be given in GRAFT_TRAIN_ARGS (e.g. "--limit 6000").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/stitch_defaults}
shift || true
pairs=("$@")
if [ ${#pairs[@]} -eq 0 ]; then
  pairs=(conv1_relu:activation conv_dw_2_relu:activation_2 conv_dw_4_relu:activation_3
         conv_dw_6_relu:block35_2_ac conv_dw_12_relu:block8_2 conv_dw_2_relu:activation_3
         conv1_relu:activation_3)
fi
graft=${GRAFT:-build/graft}
mobile=models/mobile.onnx
server=models/server.onnx
mkdir -p "$out"

top1() {  # top1 MODEL -> test top-1 in percent
  $graft eval "$1" --json --no-sources | /usr/bin/python3 -c 'import json,sys; print("%.2f" % (100 * json.load(sys.stdin)["models"][0]["top1"]))'
}

m_acc=$(top1 $mobile)
s_acc=$(top1 $server)
echo "mobile $m_acc %, server $s_acc % (test top-1)" >&2
printf '| mobile cut -> server cut | shapes | default adapter | test top-1 | vs mobile | vs server | train s |\n'
printf '| --- | --- | --- | ---: | ---: | ---: | ---: |\n'
status=0
: > "$out/results.jsonl"
for pair in "${pairs[@]}"; do
  m=${pair%%:*}
  s=${pair#*:}
  h="$out/${m}__${s}.onnx"
  shapes=$($graft design --from "$mobile@$m" --to "$server@$s" --family conv | head -1)
  shapes=${shapes/ -> / → }
  spec=$($graft stitch --head "$mobile@$m" --tail "$server@$s" -o "$h" | sed -n 's/^adapter to [^:]*: \([^ ]*\).*/\1/p')
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  $graft train "$h" -o "${h%.onnx}_trained.onnx" --epochs 3 --no-progress ${GRAFT_TRAIN_ARGS:-} >"$out/${m}__${s}.train.log" 2>&1
  t1=$(date +%s.%N)
  acc=$(top1 "${h%.onnx}_trained.onnx")
  read -r dm ds secs ok < <(/usr/bin/python3 -c "
a, m, s, t0, t1 = $acc, $m_acc, $s_acc, $t0, $t1
print('%+.2f %+.2f %.0f %d' % (a - m, a - s, t1 - t0, a > m and a >= s - 1.5))")
  [ "$ok" = 1 ] || status=1
  printf '| %s -> %s | %s | `%s` | %s %% | %s | %s | %s |\n' "$m" "$s" "$shapes" "$spec" "$acc" "$dm" "$ds" "$secs"
  printf '{"mobile_cut":"%s","server_cut":"%s","adapter":"%s","top1":%s,"mobile_top1":%s,"server_top1":%s,"train_seconds":%s,"ok":%s}\n' \
    "$m" "$s" "$spec" "$acc" "$m_acc" "$s_acc" "$secs" "$([ "$ok" = 1 ] && echo true || echo false)" >> "$out/results.jsonl"
done
exit $status

#!/bin/sh
# graft report, opened in a real browser: every kind of input (a model, a hybrid, a search
# result, a plan sweep, a training log, an evaluation) into one page; Debian's chromium, headless,
# dumps the DOM and takes a screenshot. Fails if the page has a script or a remote reference,
# misses a section or a plot, or the browser logs a console message; the harness is first shown
# to catch a console error on a page made to have one.
# Usage: report_chromium.sh GRAFT MODELS_DIR   (GRAFT_KEEP_REPORT=DIR keeps the page and screenshot)
set -eu
graft=$1
models=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/graft_report.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "report_chromium: $*" >&2; exit 1; }
command -v chromium >/dev/null || fail "chromium is not installed (scripts/build.sh installs it: scripts/deps.txt)"

browse() {  # browse PAGE OUT_PREFIX: DOM to OUT.dom, screenshot to OUT.png, browser log to OUT.log
  # HOME: chromium writes a profile; keep it in the work folder.
  HOME="$work" timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --enable-logging=stderr --v=0 --user-data-dir="$work/profile" \
    --dump-dom "file://$1" > "$2.dom" 2> "$2.log" || fail "chromium failed on $1 (see $2.log)"
  HOME="$work" timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --enable-logging=stderr --v=0 --user-data-dir="$work/profile" --window-size=1200,3000 \
    --screenshot="$2.png" "file://$1" >> "$2.log" 2>&1 || fail "chromium could not take a screenshot of $1"
}
console_messages() { grep -E 'CONSOLE|Uncaught' "$1" || true; }

# The harness sees a console error when there is one.
printf '<!DOCTYPE html><html><body><p>x</p><script>console.error("planted error")</script></body></html>\n' > "$work/bad.html"
browse "$work/bad.html" "$work/bad"
[ -n "$(console_messages "$work/bad.log")" ] || fail "the harness did not see a planted console error (chromium's logging changed?)"

# Inputs of every kind, small and quick.
"$graft" stitch --head "$models/mobile.onnx@conv_pad_6" --tail "$models/server.onnx@mixed_6a" -o "$work/hybrid.onnx" >/dev/null
"$graft" train "$work/hybrid.onnx" --limit 512 --batch 64 --log "$work/train.jsonl" --no-progress -o "$work/trained.onnx" >/dev/null
"$graft" eval "$work/trained.onnx" --limit 500 --json > "$work/eval.json"
"$graft" profile "$models/mobile.onnx" --runs 3 -o "$work/profile.json" >/dev/null
"$graft" plan "$models/mobile.onnx" --device "$work/profile.json" --server "$work/profile.json" --rtt 5ms \
  --sweep 1,10,100Mbit/s --json > "$work/plan.json"
"$graft" search --mobile "$models/mobile.onnx" --server "$models/server.onnx" --mobile-cuts conv_dw_6_relu,conv_dw_12_relu \
  --server-cuts block17_2_ac,mixed_7a --limit 1400 --holdout 300 --min-images 256 --max-images 256 --no-test \
  -o "$work/search.json" 2>/dev/null >/dev/null
"$graft" report "$models/mobile.onnx" "$work/trained.onnx" "$work/search.json" "$work/plan.json" \
  "$work/train.jsonl" "$work/eval.json" -o "$work/report.html" >/dev/null

page="$work/report.html"
! grep -qi '<script' "$page" || fail "the report has a script"
! grep -Eqi '(src|href)="(https?:)?//' "$page" || fail "the report references something remote"
browse "$page" "$work/report"
msgs=$(console_messages "$work/report.log")
[ -z "$msgs" ] || fail "console messages while rendering the report: $msgs"
dom="$work/report.dom"
for i in 1 2 3 4 5 6; do grep -q "<section id=\"s$i\">" "$dom" || fail "section $i is missing from the rendered page"; done
for title in "Model $models/mobile.onnx" "Hybrid $work/trained.onnx" "Search $work/search.json" "Plan $work/plan.json" \
  "Training $work/train.jsonl" "Evaluation $work/eval.json"; do
  grep -qF "$title" "$dom" || fail "no section titled '$title'"
done
svgs=$(grep -o '<svg' "$dom" | wc -l)
# 2 strips + 2 search plots + 1 plan + 2 training plots + 3 confusion matrices (hybrid, mobile, server).
[ "$svgs" -ge 10 ] || fail "expected at least 10 plots in the rendered page, found $svgs"
[ "$(grep -o '<circle' "$dom" | wc -l)" -ge 20 ] || fail "the plots have (almost) no points"
size=$(wc -c < "$work/report.png")
blank=$(wc -c < "$work/bad.png")
[ "$size" -gt $((blank * 4)) ] || fail "the screenshot ($size bytes) looks blank next to a one-word page ($blank bytes)"
if [ -n "${GRAFT_KEEP_REPORT:-}" ]; then mkdir -p "$GRAFT_KEEP_REPORT" && cp "$page" "$work/report.png" "$GRAFT_KEEP_REPORT/"; fi
echo "report_chromium: ok ($svgs plots; screenshot $size bytes)"

#!/usr/bin/env bash
# Writes DIR/MANIFEST.md for the bundled pair in DIR (default models): per model its
# architecture and options, parameters, MACs, Fashion-MNIST test accuracy (measured now with
# graft eval), sha256, size, the command that regenerates it and its training time (from
# DIR/<model>.train.log, written by tools/train_bundled.sh). Run from the project root.
set -euo pipefail
dir="${1:-models}"
g=build/graft
py=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for m in mobile server; do
  [ -f "$dir/$m.onnx" ] || { echo "write_manifest: $dir/$m.onnx not found" >&2; exit 2; }
  $g summary "$dir/$m.onnx" --json > "$tmp/$m.summary.json"
  $g eval "$dir/$m.onnx" --json > "$tmp/$m.eval.json"
  sha256sum "$dir/$m.onnx" | cut -d' ' -f1 > "$tmp/$m.sha256"
  grep -h "trained .* initializers" "$dir/$m.train.log" 2>/dev/null | tail -1 > "$tmp/$m.trained" || true
  grep -h "^$m training time" "$dir/$m.train.log" 2>/dev/null | tail -1 > "$tmp/$m.time" || true
done
cat "$dir/regen.time" > "$tmp/total" 2>/dev/null || true
sed -n '/^train_server()/,/^}/p;/^train_mobile()/,/^}/p' tools/train_bundled.sh | grep -E '^\s+\$g ' -A2 | grep -v '^--$' | sed 's/^  //' > "$tmp/commands"
$py - "$dir" "$tmp" > "$tmp/MANIFEST.md" <<'PY'
import json, os, sys
import onnx
d, t = sys.argv[1], sys.argv[2]
def read(name):
    p = os.path.join(t, name)
    return open(p).read().strip() if os.path.exists(p) else ""
out = ["# The bundled pretrained pair", "",
       "Both models were trained from scratch by graft's own trainer (`graft train --train all`) on",
       "Fashion-MNIST's 60,000 training images (Debian's dataset-fashion-mnist); accuracy is on its",
       "10,000 test images, measured by `graft eval` when this file was written",
       "(`tools/write_manifest.sh`). Regenerate both with `tools/train_bundled.sh models both` from the",
       "project root after `scripts/build.sh`; it runs the commands below, one after the other.",
       "Training is deterministic for a given thread count: shuffling, augmentation and Dropout all",
       "draw from generators seeded by `--seed` and the step, so a re-run on this machine gives the",
       "same weights.", "",
       "| model | file | architecture (graft.architecture) | input | parameters | MACs/image | test top-1 | test top-5 | size | sha256 |",
       "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
for m in ["mobile", "server"]:
    path = os.path.join(d, m + ".onnx")
    s = json.load(open(os.path.join(t, m + ".summary.json")))
    e = json.load(open(os.path.join(t, m + ".eval.json")))["models"][0]
    meta = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
    shape = "x".join(str(x) for x in s["rows"][0]["outputs"][0]["shape"][1:])
    tot = s["totals"]
    out.append(f"| {m} | `{path}` | `{meta.get('graft.architecture', '?')}` | {shape} | {tot['params']:,} | "
               f"{tot['macs']:,} | {100 * e['top1']:.2f} % | {100 * e['top5']:.2f} % | "
               f"{os.path.getsize(path):,} B | `{read(m + '.sha256')}` |")
out += ["", "## Training", ""]
for m in ["mobile", "server"]:
    out.append(f"- **{m}**: {read(m + '.trained') or 'training log not found'}")
    if read(m + ".time"):
        out.append(f"  ({read(m + '.time')})")
if read("total"):
    out += ["", f"Both, end to end ({read('total')}), on {os.cpu_count()} cores."]
out += ["", "## Commands (from tools/train_bundled.sh)", "", "```sh", read("commands"), "```"]
print("\n".join(out))
PY
mv "$tmp/MANIFEST.md" "$dir/MANIFEST.md.tmp" && mv "$dir/MANIFEST.md.tmp" "$dir/MANIFEST.md"
echo "wrote $dir/MANIFEST.md"

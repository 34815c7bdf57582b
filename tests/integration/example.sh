#!/usr/bin/env bash
# The README's C++ example builds and runs (on small zoo variants with the same layer names).
set -euo pipefail
graft="$(realpath "$1")"; example="$(realpath "$2")"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cd "$t"
"$graft" zoo mobilenet_v1 --alpha 0.25 --input 96 -o mobilenet.onnx >/dev/null
"$graft" zoo inception_resnet_v2 --input 107 --width 0.25 --repeats 1,20,1 -o inception_resnet_v2.onnx >/dev/null
"$example"
"$graft" summary --json hybrid.onnx | /usr/bin/python3 -c "
import json, sys
j = json.load(sys.stdin)
out = j['rows'][-1]['outputs'][0]['shape']
assert out == [1, 1000], out
assert any(r['name'].startswith('adapter/') for r in j['rows'])
print('example hybrid:', len(j['rows']), 'rows, output', out)"

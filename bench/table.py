#!/usr/bin/python3
"""The Markdown table of a bench/compare.sh run: each engine's best median per model and batch,
graft/ORT (and graft/PyTorch when timed), and per batch the geometric mean and the largest
graft/ORT; then whether graft ran every model without ATen nodes or oneDNN reference kernels.

    /usr/bin/python3 bench/table.py OUT_DIR/results.jsonl
"""
import json
import math
import os
import sys


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    key = lambda r: (os.path.basename(r["model"]).replace(".onnx", ""), r["batch"])
    table, slow = {}, {}
    for r in rows:
        e = table.setdefault(key(r), {})
        e[r["engine"]] = min(e.get(r["engine"], float("inf")), r["median_ms"])
        if r["engine"] == "graft":
            aten = sum(r.get("reference_ops", {}).values())
            ref = r.get("reference_kernels", 0)
            if aten or ref:
                slow[key(r)] = f'ATen {r.get("reference_ops")}, oneDNN reference kernels {r.get("reference_kernel_ops")}'
    versions = {r["engine"]: r.get("version", "") for r in rows}
    torch = any("pytorch-eager" in e for e in table.values())
    print(f"ONNX Runtime {versions.get('onnxruntime', '?')}"
          + (f", PyTorch {versions.get('pytorch-eager', '?')}" if torch else "")
          + "; median latency in ms, 2 threads; ratios < 1: graft is faster")
    print()
    head = "| model | batch | graft | ORT | graft/ORT |"
    rule = "| --- | ---: | ---: | ---: | ---: |"
    if torch:
        head += " PyTorch eager | PyTorch frozen | graft/PyTorch eager | graft/PyTorch frozen |"
        rule += " ---: | ---: | ---: | ---: |"
    print(head)
    print(rule)
    f = lambda v: "-" if v is None else f"{v:.2f}"
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}"
    per_batch = {}
    for (m, b), e in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        gr, ort = e.get("graft"), e.get("onnxruntime")
        line = f"| {m} | {b} | {f(gr)} | {f(ort)} | {ratio(gr, ort)} |"
        if torch:
            pe, pf = e.get("pytorch-eager"), e.get("pytorch-frozen")
            line += f" {f(pe)} | {f(pf)} | {ratio(gr, pe)} | {ratio(gr, pf)} |"
        print(line)
        if gr is not None and ort is not None:
            per_batch.setdefault(b, []).append((gr / ort, m))
    print()
    for b, rs in sorted(per_batch.items()):
        geo = math.exp(sum(math.log(r) for r, _ in rs) / len(rs))
        worst = max(rs)
        print(f"batch {b}: {len(rs)} models, geometric mean graft/ORT {geo:.3f}, largest {worst[0]:.3f} ({worst[1]})")
    print()
    if slow:
        for (m, b), what in sorted(slow.items()):
            print(f"slow path: {m} at batch {b}: {what}")
    else:
        print("every model ran with no ATen node and no oneDNN reference kernel")


if __name__ == "__main__":
    main()

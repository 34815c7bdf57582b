#!/usr/bin/python3
"""PyTorch latency on one ONNX file, for bench/compare.sh (Debian's /usr/bin/python3).

    /usr/bin/python3 bench/torch_bench.py MODEL.onnx --mode eager|frozen --batch N --threads T

The ONNX graph runs as a torch module op by op (bench/onnx_torch.py): `eager` as is, `frozen`
after torch.jit.trace + torch.jit.freeze + torch.jit.optimize_for_inference (PyTorch's own
inference path: Conv+BN folding, oneDNN layouts). Prints one JSON line with median_ms,
p90_ms, p99_ms, images_per_s.
"""
import argparse
import json
import os
import sys
import time
import warnings

import onnx
import torch

warnings.filterwarnings("ignore")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_torch import OnnxModule  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--mode", choices=["eager", "frozen"], default="eager")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    m = OnnxModule(a.model).eval()
    g = onnx.load(a.model, load_external_data=False).graph
    inits = {t.name for t in g.initializer}
    shape = [d.dim_value for d in next(i for i in g.input if i.name not in inits).type.tensor_type.shape.dim]
    shape[0] = a.batch
    x = torch.rand(shape)
    with torch.inference_mode() if a.mode == "eager" else torch.no_grad():
        if a.mode == "frozen":
            m = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x).eval()))
        for _ in range(a.warmup):
            m(x)
        ms = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            m(x)
            ms.append(1000 * (time.perf_counter() - t0))
    ms.sort()

    def pct(q):
        pos = q * (len(ms) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(ms) - 1)
        return ms[lo] + (pos - lo) * (ms[hi] - ms[lo])

    print(json.dumps({"engine": "pytorch-" + a.mode, "version": torch.__version__, "model": a.model, "batch": a.batch,
                      "threads": a.threads, "median_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99),
                      "images_per_s": 1000 * a.batch / pct(0.5)}))


if __name__ == "__main__":
    main()

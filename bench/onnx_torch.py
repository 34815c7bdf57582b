"""A PyTorch module that runs an ONNX graph op by op with torch functional calls.

Used by bench/torch_bench.py so that PyTorch (eager, or torch.jit.freeze +
optimize_for_inference) runs exactly the ONNX files graft and ONNX Runtime run. It covers the
ops of graft's zoo models, stitched hybrids and torchvision's exports (opsets 11-17), with the
attributes those use; anything else raises NotImplementedError naming the op.
"""
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(torch.nn.Module):
    def __init__(self, path):
        super().__init__()
        model = onnx.load(path)
        g = model.graph
        self.consts = {}
        for i, t in enumerate(g.initializer):
            arr = numpy_helper.to_array(t).copy()
            tensor = torch.from_numpy(arr)
            name = "c%d" % i
            self.register_buffer(name, tensor)
            self.consts[t.name] = name
        inits = {t.name for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in inits]
        self.outputs = [o.name for o in g.output]
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in g.node]

    def _value(self, env, name):
        if name == "":
            return None
        if name in env:
            return env[name]
        return getattr(self, self.consts[name])

    def forward(self, x):
        env = {self.inputs[0]: x}
        for op, ins, outs, a in self.nodes:
            v = [self._value(env, n) for n in ins]
            y = getattr(self, "op_" + op, None)
            if y is None:
                raise NotImplementedError("op " + op)
            r = y(v, a)
            if not isinstance(r, (list, tuple)):
                r = [r]
            for name, t in zip(outs, r):
                if name:
                    env[name] = t
        return env[self.outputs[0]]

    # --- ops ---
    @staticmethod
    def _pads(a, k):
        p = a.get("pads", [0] * (2 * k))
        return p[:k], p[k:]

    def op_Conv(self, v, a):
        x, w = v[0], v[1]
        b = v[2] if len(v) > 2 else None
        k = w.dim() - 2
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NotImplementedError("Conv auto_pad")
        begin, end = self._pads(a, k)
        if begin != end:
            x = F.pad(x, [p for i in reversed(range(k)) for p in (begin[i], end[i])])
            begin = [0] * k
        return F.conv2d(x, w, b, stride=a.get("strides", [1] * k), padding=begin,
                        dilation=a.get("dilations", [1] * k), groups=a.get("group", 1))

    def op_BatchNormalization(self, v, a):
        return F.batch_norm(v[0], v[3], v[4], v[1], v[2], False, 0.0, a.get("epsilon", 1e-5))

    def op_Relu(self, v, a):
        return F.relu(v[0])

    def op_Clip(self, v, a):
        lo = v[1] if len(v) > 1 and v[1] is not None else a.get("min", None)
        hi = v[2] if len(v) > 2 and v[2] is not None else a.get("max", None)
        if lo is not None and float(lo) == 0.0 and hi is not None and float(hi) == 6.0:
            return F.relu6(v[0])
        return torch.clamp(v[0], None if lo is None else float(lo), None if hi is None else float(hi))

    def op_Pad(self, v, a):
        pads = [int(p) for p in (v[1].tolist() if len(v) > 1 else a["pads"])]
        k = len(pads) // 2
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        flat = [p for i in reversed(range(k)) for p in (pads[i], pads[i + k])]
        while len(flat) > 4 and flat[-1] == 0 and flat[-2] == 0:
            flat = flat[:-2]
        return F.pad(v[0], flat, mode=mode)

    def op_Add(self, v, a):
        return v[0] + v[1]

    def op_Mul(self, v, a):
        return v[0] * v[1]

    def op_Concat(self, v, a):
        return torch.cat(v, dim=a["axis"])

    def op_MaxPool(self, v, a):
        k = a["kernel_shape"]
        begin, end = self._pads(a, len(k))
        x = v[0]
        if begin != end:
            x = F.pad(x, [p for i in reversed(range(len(k))) for p in (begin[i], end[i])], value=float("-inf"))
            begin = [0] * len(k)
        return F.max_pool2d(x, k, a.get("strides", [1] * len(k)), begin, ceil_mode=bool(a.get("ceil_mode", 0)))

    def op_AveragePool(self, v, a):
        k = a["kernel_shape"]
        begin, end = self._pads(a, len(k))
        if begin != end:
            raise NotImplementedError("asymmetric AveragePool pads")
        return F.avg_pool2d(v[0], k, a.get("strides", [1] * len(k)), begin, ceil_mode=bool(a.get("ceil_mode", 0)),
                            count_include_pad=bool(a.get("count_include_pad", 0)))

    def op_GlobalAveragePool(self, v, a):
        return F.adaptive_avg_pool2d(v[0], 1)

    def op_Flatten(self, v, a):
        return torch.flatten(v[0], a.get("axis", 1))

    def op_Reshape(self, v, a):
        shape = [int(s) for s in v[1].tolist()]
        shape = [v[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return v[0].reshape(shape)

    def op_Gemm(self, v, a):
        x, w = v[0], v[1]
        if a.get("transA", 0):
            x = x.t()
        if a.get("transB", 0):
            w = w.t()
        y = a.get("alpha", 1.0) * (x @ w)
        if len(v) > 2 and v[2] is not None:
            y = y + a.get("beta", 1.0) * v[2]
        return y

    def op_Softmax(self, v, a):
        return F.softmax(v[0], dim=a.get("axis", -1))

    def op_Identity(self, v, a):
        return v[0]

    def op_Dropout(self, v, a):
        return v[0]

    def op_Shape(self, v, a):
        return torch.tensor(v[0].shape, dtype=torch.int64)

    def op_Gather(self, v, a):
        return torch.index_select(v[0], a.get("axis", 0), v[1].reshape(-1)).reshape(
            list(v[0].shape[:a.get("axis", 0)]) + list(v[1].shape) + list(v[0].shape[a.get("axis", 0) + 1:]))

    def op_Unsqueeze(self, v, a):
        axes = a["axes"] if "axes" in a else [int(i) for i in v[1].tolist()]
        y = v[0]
        for ax in sorted(axes):
            y = y.unsqueeze(ax)
        return y

    def op_Constant(self, v, a):
        return torch.from_numpy(numpy_helper.to_array(a["value"]).copy())

    def op_Resize(self, v, a):
        sizes = v[3] if len(v) > 3 and v[3] is not None else None
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if sizes is None:
            raise NotImplementedError("Resize by scales")
        hw = [int(s) for s in sizes.tolist()[2:]]
        ct = a.get("coordinate_transformation_mode", b"half_pixel")
        ct = ct.decode() if isinstance(ct, bytes) else ct
        if mode == "linear":
            return F.interpolate(v[0], size=hw, mode="bilinear", align_corners=(ct == "align_corners"))
        return F.interpolate(v[0], size=hw, mode="nearest")

    def op_ReduceMean(self, v, a):
        axes = a["axes"] if "axes" in a else [int(i) for i in v[1].tolist()]
        return torch.mean(v[0], dim=axes, keepdim=bool(a.get("keepdims", 1)))

    def op_Slice(self, v, a):
        if len(v) > 1:
            starts, ends = v[1].tolist(), v[2].tolist()
            axes = v[3].tolist() if len(v) > 3 and v[3] is not None else list(range(len(starts)))
            steps = v[4].tolist() if len(v) > 4 and v[4] is not None else [1] * len(starts)
        else:
            starts, ends = a["starts"], a["ends"]
            axes = a.get("axes", list(range(len(starts))))
            steps = [1] * len(starts)
        x = v[0]
        index = [slice(None)] * x.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if st <= 0:
                raise NotImplementedError("Slice with step <= 0")
            n = x.shape[ax]
            index[ax] = slice(max(min(s, n), -n), max(min(e, n), -n - 1), st)
        return x[tuple(index)]

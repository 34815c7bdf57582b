#!/usr/bin/python3
"""Keras models with the layers and attributes TensorFlow.js does not implement, and their
outputs computed independently of graft: each Keras layer's formula written out here with
PyTorch's functional ops, on channels-last tensors as Keras defines it.

Writes OUT/NAME/{model.json, weights.bin, x.npy, y.npy} in the TF.js layers format that
tools/keras_tfjs_models.js writes (a Keras config plus its weights), so the same test loop turns
them into every Keras container (tools/keras_containers.py) and compares graft with y.npy.

    /usr/bin/python3 tools/keras_torch_reference.py OUT
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

rng = np.random.RandomState(7)


def rand(*shape, lo=-0.5, hi=0.5):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


class Model:
    """A Keras functional config under construction, with weights and a reference forward."""

    def __init__(self, name):
        self.name = name
        self.layers, self.weights, self.values = [], [], {}

    def add(self, cls, name, config, inputs, fn, weights=(), kwargs=None, operand=None):
        """`kwargs`: the call's keyword arguments (Keras 2 keeps them beside the first input);
        `operand`: a layer whose output is a keyword argument (y) rather than an input."""
        config = dict(config, name=name)
        inbound = [[[i, 0, 0, dict(kwargs or {}) if k == 0 else {}] for k, i in enumerate(inputs)]] if inputs else []
        self.layers.append({"class_name": cls, "name": name, "config": config, "inbound_nodes": inbound})
        for i, w in enumerate(weights):
            self.weights.append((f"{name}/w{i}", w))
        extra = [self.values[operand]] if operand else []
        self.values[name] = fn(*[self.values[i] for i in inputs], *extra)
        return name

    def save(self, out, x_name, y_name):
        d = os.path.join(out, self.name)
        os.makedirs(d, exist_ok=True)
        topology = {"class_name": "Functional", "keras_version": "2.15.0", "backend": "tensorflow",
                    "config": {"name": self.name, "layers": self.layers,
                               "input_layers": [[x_name, 0, 0]], "output_layers": [[y_name, 0, 0]]}}
        specs = [{"name": n, "shape": list(w.shape), "dtype": "float32"} for n, w in self.weights]
        with open(os.path.join(d, "weights.bin"), "wb") as f:
            f.write(b"".join(w.tobytes() for _, w in self.weights))
        with open(os.path.join(d, "model.json"), "w") as f:
            json.dump({"format": "layers-model", "generatedBy": "graft tools/keras_torch_reference.py",
                       "modelTopology": topology,
                       "weightsManifest": [{"paths": ["weights.bin"], "weights": specs}]}, f)
        np.save(os.path.join(d, "x.npy"), self.values[x_name].numpy())
        np.save(os.path.join(d, "y.npy"), self.values[y_name].numpy())


# Keras semantics on NHWC tensors.
def nchw(t): return t.permute(0, 3, 1, 2)
def nhwc(t): return t.permute(0, 2, 3, 1)


def tf_same_pad(t, k, s, d=1):
    """TensorFlow's 'same' padding of an NHWC tensor: the extra row/column at the bottom/right."""
    pads = []
    for size, kk, ss in ((t.shape[1], k[0], s[0]), (t.shape[2], k[1], s[1])):
        ext = (kk - 1) * d + 1
        out = -(-size // ss)
        total = max((out - 1) * ss + ext - size, 0)
        pads.append((total // 2, total - total // 2))
    return F.pad(t, (0, 0, pads[1][0], pads[1][1], pads[0][0], pads[0][1]))


def conv2d(t, kernel, bias, strides, padding, groups=1, dilation=1):
    if padding == "same":
        t = tf_same_pad(t, kernel.shape[:2], strides, dilation)
    w = torch.from_numpy(kernel).permute(3, 2, 0, 1)  # HWIO -> OIHW
    y = F.conv2d(nchw(t), w, torch.from_numpy(bias) if bias is not None else None, stride=strides,
                 groups=groups, dilation=dilation)
    return nhwc(y)


def keras_relu(t, negative_slope=0.0, max_value=None, threshold=0.0):
    y = torch.where(t > threshold, t, torch.zeros_like(t))
    if max_value is not None:
        y = y.clamp(0, max_value)
    return y - negative_slope * F.relu(threshold - t)


def extras():
    m = Model("extras")
    x = m.add("InputLayer", "x", {"batch_input_shape": [None, 9, 8, 4], "dtype": "float32"}, [],
              lambda: torch.from_numpy(rand(2, 9, 8, 4, lo=-1, hi=1)))
    k, b = rand(3, 3, 2, 6), rand(6)
    g = m.add("Conv2D", "grouped", {"filters": 6, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same",
                                    "groups": 2, "activation": "linear", "use_bias": True}, [x],
              lambda t: conv2d(t, k, b, (2, 2), "same", groups=2), [k, b])
    r = m.add("ReLU", "thresholded", {"max_value": 0.4, "negative_slope": 0.1, "threshold": 0.05}, [g],
              lambda t: keras_relu(t, 0.1, 0.4, 0.05))
    r2 = m.add("ReLU", "negative_threshold", {"max_value": None, "negative_slope": 0.2, "threshold": -0.1}, [g],
               lambda t: keras_relu(t, 0.2, None, -0.1))
    k2 = rand(1, 1, 4, 6)
    p = m.add("Conv2D", "pointwise", {"filters": 6, "kernel_size": [1, 1], "strides": [2, 2], "padding": "valid",
                                      "activation": "hard_swish", "use_bias": False}, [x],
              lambda t: (lambda y: y * F.relu6(y + 3) / 6)(conv2d(t, k2, None, (2, 2), "valid")), [k2])
    s = m.add("Subtract", "difference", {}, [r, p], lambda a, c: a - c)
    c = m.add("CustomScaleLayer", "custom_scale", {"scale": 0.3}, [r2, s], lambda a, c: a + 0.3 * c)
    lam = m.add("Lambda", "block35_1", {"function": ["4wIAAAAAAAAA", None, None], "function_type": "lambda",
                                        "arguments": {"scale": 0.17}, "output_shape": None},
                [c, r], lambda a, c: a + 0.17 * c)
    mean, var = rand(6, lo=-0.2, hi=0.2), rand(6, lo=0.5, hi=2)
    n = m.add("Normalization", "norm", {"axis": -1, "mean": mean.tolist(), "variance": var.tolist()}, [lam],
              lambda t: (t - torch.from_numpy(mean)) / torch.clamp(torch.from_numpy(var).sqrt(), min=1e-7))
    # An adapted Normalization: mean, variance and sample count are weights.
    amean, avar = rand(6, lo=-0.2, hi=0.2), rand(6, lo=0.5, hi=2)
    an = m.add("Normalization", "adapted", {"axis": -1}, [n],
               lambda t: (t - torch.from_numpy(amean)) / torch.from_numpy(avar).sqrt().clamp(min=1e-7),
               [amean, avar, np.array(1000.0, dtype=np.float32)])
    e = m.add("ELU", "elu", {"alpha": 0.7}, [an], lambda t: F.elu(t, 0.7))
    sd = m.add("SpatialDropout2D", "spatial_dropout", {"rate": 0.3}, [e], lambda t: t)
    gn = m.add("GaussianNoise", "noise", {"stddev": 0.5}, [sd], lambda t: t)
    # TensorFlow 2's bilinear resize uses half-pixel centres: PyTorch's align_corners=False.
    u = m.add("UpSampling2D", "upsample", {"size": [2, 3], "interpolation": "bilinear"}, [gn],
              lambda t: nhwc(F.interpolate(nchw(t), scale_factor=(2, 3), mode="bilinear", align_corners=False)))
    # tf.keras' MobileNetV3 hard_sigmoid: TFOpLambda layers for `x + 3.0` and `* (1 / 6)`.
    t3 = m.add("TFOpLambda", "tf.__operators__.add", {"function": "__operators__.add"}, [u], lambda t: t + 3.0,
               kwargs={"y": 3.0, "name": None})
    r6 = m.add("ReLU", "re_lu_6", {"max_value": 6.0}, [t3], lambda t: keras_relu(t, 0.0, 6.0))
    hs = m.add("TFOpLambda", "tf.math.multiply", {"function": "math.multiply"}, [r6], lambda t: t * (1.0 / 6.0),
               kwargs={"y": 1.0 / 6.0, "name": None})
    hw = m.add("Multiply", "hard_swish", {}, [u, hs], lambda a, b: a * b)
    dif = m.add("TFOpLambda", "tf.math.subtract", {"function": "math.subtract"}, [hw], lambda a, b: a - b,
                kwargs={"y": [u, 0, 0], "name": None}, operand=u)
    a = m.add("Activation", "silu", {"activation": "silu"}, [dif], lambda t: t * torch.sigmoid(t))
    gm = m.add("GlobalMaxPooling2D", "gmax", {"keepdims": True}, [a], lambda t: t.amax(dim=(1, 2), keepdim=True))
    ga = m.add("GlobalAveragePooling2D", "gavg", {"keepdims": True}, [a], lambda t: t.mean(dim=(1, 2), keepdim=True))
    mx = m.add("Minimum", "smaller", {}, [gm, ga], torch.minimum)
    lr = m.add("Activation", "leaky", {"activation": "leaky_relu"}, [mx], lambda t: F.leaky_relu(t, 0.2))
    f = m.add("Flatten", "flat", {}, [lr], lambda t: t.reshape(t.shape[0], -1))
    kd, bd = rand(6, 3), rand(3)
    y = m.add("Dense", "out", {"units": 3, "activation": "linear"}, [f],
              lambda t: t @ torch.from_numpy(kd) + torch.from_numpy(bd), [kd, bd])
    return m, x, y


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    torch.set_grad_enabled(False)
    for make in (extras,):
        model, x, y = make()
        model.save(sys.argv[1], x, y)
    print(f"wrote 1 reference model to {sys.argv[1]}")

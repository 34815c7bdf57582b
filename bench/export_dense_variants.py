#!/usr/bin/python3
"""DenseNets outside the benchmark set, to check the dense-block buffers on graphs they were not
tuned on: torchvision's DenseNet-161 (growth 48) and -201 (four blocks of 6/12/48/32 layers),
and DenseNet-121 with each block written as a chain, x = cat([x, new]) layer by layer (as
Keras's DenseNet builds it; torchvision concatenates the whole list each time). Random weights
(seeded), opset 13, a dynamic batch, 224x224. Writes OUT_DIR/<name>.onnx, and the input and
PyTorch's logits for batch 1 as OUT_DIR/<name>_x.npy and <name>_y.npy.

    /usr/bin/python3 bench/export_dense_variants.py OUT_DIR
"""
import os
import sys
import warnings

import numpy as np
import torch
import torchvision
from torchvision.models import densenet

warnings.filterwarnings("ignore")


def chained_block(self, init_features):
    x = init_features
    for _, layer in self.items():
        x = torch.cat([x, layer([x])], 1)
    return x


def export(model, name, out):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    with torch.no_grad():
        np.save(os.path.join(out, name + "_x.npy"), x.numpy())
        np.save(os.path.join(out, name + "_y.npy"), model(x).numpy())
    print(path)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for name in ("densenet161", "densenet201"):
        export(getattr(torchvision.models, name)(weights=None).eval(), name, out)
    original = densenet._DenseBlock.forward
    densenet._DenseBlock.forward = chained_block
    try:
        torch.manual_seed(0)
        export(torchvision.models.densenet121(weights=None).eval(), "densenet121_chained", out)
    finally:
        densenet._DenseBlock.forward = original


if __name__ == "__main__":
    main()

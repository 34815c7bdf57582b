#!/usr/bin/python3
"""The PyTorch exports bench/compare.sh times: torchvision MobileNetV2, ResNet-50 (224x224) and
Inception v3 (299x299), random weights (seeded), ONNX opset 13 with a dynamic batch dimension.

    /usr/bin/python3 bench/export_models.py OUT_DIR
"""
import os
import sys
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")
MODELS = {"mobilenet_v2": ({}, 224), "resnet50": ({}, 224),
          "inception_v3": ({"aux_logits": False, "init_weights": True}, 299)}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, (kwargs, size) in MODELS.items():
        path = os.path.join(out, name + ".onnx")
        if os.path.exists(path):
            continue
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)(**kwargs).eval()
        x = torch.rand(1, 3, size, size)
        tmp = path + ".tmp"
        torch.onnx.export(model, x, tmp, opset_version=13, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        os.replace(tmp, path)
        print("wrote", path)


if __name__ == "__main__":
    main()

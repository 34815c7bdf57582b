#!/usr/bin/python3
"""The torchvision exports bench/compare.sh times: one model of every torchvision classification
family, random weights (seeded), a dynamic batch dimension, at the input size torchvision's own
eval transforms use, written as OUT_DIR/<model>.onnx (opset 13) and OUT_DIR/<model>_op17.onnx
(opset 17: LayerNorm as one LayerNormalization node, ReduceMean's axes still an attribute).

    /usr/bin/python3 bench/export_models.py OUT_DIR [--opsets 13,17] [--models a,b,...] [--list]

Existing files are kept. --list prints the model names (one a line) and exits.
"""
import argparse
import os
import sys
import warnings

import torch
import torchvision

warnings.filterwarnings("ignore")

# name -> (constructor kwargs, input size)
MODELS = {
    "alexnet": ({}, 224),
    "vgg11_bn": ({}, 224),
    "resnet18": ({}, 224),
    "resnet50": ({}, 224),
    "resnext50_32x4d": ({}, 224),
    "wide_resnet50_2": ({}, 224),
    "densenet121": ({}, 224),
    "squeezenet1_0": ({}, 224),
    "shufflenet_v2_x0_5": ({}, 224),
    "shufflenet_v2_x1_0": ({}, 224),
    "mobilenet_v2": ({}, 224),
    "mobilenet_v3_small": ({}, 224),
    "mobilenet_v3_large": ({}, 224),
    "mnasnet1_0": ({}, 224),
    "efficientnet_b0": ({}, 224),
    "efficientnet_b3": ({}, 300),
    "efficientnet_v2_s": ({}, 384),
    "regnet_x_400mf": ({}, 224),
    "regnet_y_800mf": ({}, 224),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 224),
    "inception_v3": ({"aux_logits": False, "init_weights": True}, 299),
    "convnext_tiny": ({}, 224),
}


def file_name(name, opset):
    return name + (".onnx" if opset == 13 else f"_op{opset}.onnx")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--opsets", default="13,17")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    names = [m for m in args.models.split(",") if m]
    for m in names:
        if m not in MODELS:
            sys.exit(f"export_models.py: unknown model '{m}' (known: {', '.join(MODELS)})")
    if args.list:
        print("\n".join(names))
        return
    os.makedirs(args.out, exist_ok=True)
    for opset in (int(o) for o in args.opsets.split(",")):
        for name in names:
            kwargs, size = MODELS[name]
            path = os.path.join(args.out, file_name(name, opset))
            if os.path.exists(path):
                continue
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(**kwargs).eval()
            x = torch.rand(1, 3, size, size)
            tmp = path + ".tmp"
            torch.onnx.export(model, x, tmp, opset_version=opset, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
            os.replace(tmp, path)
            print("wrote", path)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Interop fixtures: torchvision models (random weights) exported by PyTorch's ONNX exporter.

For each family and opset this writes DIR/<family>_op<opset>/ (batch axis dynamic, as
`dynamic_axes` exports it) and DIR/<family>_op13_fixed/ (batch fixed at 1) with model.onnx and
test_data_set_0/{input_0.pb, output_0.pb} (ONNX TensorProto files, PyTorch's own output as the
reference). BatchNorm statistics and affine parameters are randomised so that normalisation is
not an identity. Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision).

    /usr/bin/python3 tools/export_torchvision.py --out build/tests/interop
"""
import argparse
import hashlib
import os
import sys
import warnings

FAMILIES = {
    # name: (constructor, keyword arguments, input size)
    "resnet18": ("resnet18", {}, 96),
    "mobilenet_v2": ("mobilenet_v2", {}, 96),
    "mobilenet_v3_small": ("mobilenet_v3_small", {}, 96),
    "inception_v3": ("inception_v3", {"aux_logits": False, "init_weights": True}, 107),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True}, 96),
    "densenet121": ("densenet121", {}, 96),
    "efficientnet_b0": ("efficientnet_b0", {}, 96),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x0_5", {}, 96),
    # Its channel split is a Slice whose bounds come from Shape: static inference cannot size it.
    "shufflenet_v2_x1_0": ("shufflenet_v2_x1_0", {}, 96),
    "regnet_x_400mf": ("regnet_x_400mf", {}, 96),
    "squeezenet1_0": ("squeezenet1_0", {}, 96),
    "convnext_tiny": ("convnext_tiny", {}, 96),
    "regnet_y_400mf": ("regnet_y_400mf", {}, 96),
    "mnasnet0_5": ("mnasnet0_5", {}, 96),
    "mobilenet_v3_large": ("mobilenet_v3_large", {}, 96),
}
OPSETS = (11, 13, 17)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--only", help="comma-separated families")
    args = parser.parse_args()

    stamp_path = os.path.join(args.out, "STAMP")
    with open(__file__, "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest() + (args.only or "")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        print("interop fixtures are up to date in", args.out)
        return 0

    warnings.filterwarnings("ignore")
    import torch
    import torchvision
    from onnx import numpy_helper

    os.makedirs(args.out, exist_ok=True)
    families = args.only.split(",") if args.only else list(FAMILIES)
    for name in families:
        ctor, kwargs, size = FAMILIES[name]
        torch.manual_seed(0)
        model = getattr(torchvision.models, ctor)(weights=None, **kwargs)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.uniform_(-0.2, 0.2, generator=gen)
                    m.running_var.uniform_(0.5, 1.5, generator=gen)
                    m.weight.uniform_(0.5, 1.5, generator=gen)
                    m.bias.uniform_(-0.2, 0.2, generator=gen)
        model.eval()
        x = torch.randn(1, 3, size, size, generator=gen)
        with torch.no_grad():
            y = model(x)
        for opset, dynamic in [(o, True) for o in OPSETS] + [(13, False)]:
            d = os.path.join(args.out, f"{name}_op{opset}" + ("" if dynamic else "_fixed"))
            os.makedirs(os.path.join(d, "test_data_set_0"), exist_ok=True)
            torch.onnx.export(model, x, os.path.join(d, "model.onnx"), opset_version=opset,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None)
            for kind, t in (("input_0", x), ("output_0", y)):
                with open(os.path.join(d, "test_data_set_0", kind + ".pb"), "wb") as f:
                    f.write(numpy_helper.from_array(t.numpy()).SerializeToString())
            print("exported", name, "opset", opset, flush=True)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

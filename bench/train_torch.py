#!/usr/bin/python3
"""The PyTorch side of bench/train_compare.sh (Debian's /usr/bin/python3 with python3-torch).

    train_torch.py export OUT_DIR
        torchvision MobileNetV2 and ResNet-50 (random weights, seeded) as ONNX (opset 13, dynamic
        batch) with graft.preprocess metadata (224x224 RGB, ImageNet mean/std), for graft to
        stitch: OUT_DIR/mobilenet_v2_train.onnx, OUT_DIR/resnet50_train.onnx.
    train_torch.py train --data DIR --images N --batch 64 --threads 2 --steps S
        The same hybrid built from torchvision modules: MobileNetV2 features[0:7] (32x28x28),
        the adapter conv 1x1 32->512 + BatchNorm + ReLU, ResNet-50 layer3, layer4, pooling and fc.
        Both networks frozen (no gradients for their weights, eval-mode BatchNorm), the adapter
        trained with SGD (lr 0.01, momentum 0.9) on cross-entropy, batch 64, on the first N
        Fashion-MNIST training images prepared as graft prepares them (bilinear to 224x224,
        grey to RGB, /255, mean/std). Prints one JSON line: images_per_s over the timed steps.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time
import warnings

import numpy as np
import onnx
import torch
import torch.nn.functional as F
import torchvision

warnings.filterwarnings("ignore")
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def models():
    torch.manual_seed(0)
    mobilenet = torchvision.models.mobilenet_v2().eval()
    torch.manual_seed(0)
    resnet = torchvision.models.resnet50().eval()
    return mobilenet, resnet


def export(out):
    os.makedirs(out, exist_ok=True)
    mobilenet, resnet = models()
    meta = json.dumps({"size": [224, 224], "channels": 3, "scale": 1 / 255, "mean": MEAN, "std": STD})
    for name, model in (("mobilenet_v2_train", mobilenet), ("resnet50_train", resnet)):
        path = os.path.join(out, name + ".onnx")
        tmp = path + ".tmp"
        torch.onnx.export(model, torch.rand(1, 3, 224, 224), tmp, opset_version=13, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        m = onnx.load(tmp)
        m.metadata_props.add(key="graft.preprocess", value=meta)
        onnx.save(m, tmp)
        os.replace(tmp, path)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(directory, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(directory, name)):
            return os.path.join(directory, name)
    raise SystemExit(f"train_torch.py: no {stem}[.gz] in {directory}")


def train(a):
    torch.set_num_threads(a.threads)
    images = read_idx(find(a.data, "train-images-idx3-ubyte"))[:a.images]
    labels = read_idx(find(a.data, "train-labels-idx1-ubyte"))[:a.images]
    x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1) / 255
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    y = torch.from_numpy(labels.astype(np.int64))

    mobilenet, resnet = models()
    head = mobilenet.features[:7]
    tail = torch.nn.Sequential(resnet.layer3, resnet.layer4, resnet.avgpool, torch.nn.Flatten(1), resnet.fc)
    torch.manual_seed(1)
    adapter = torch.nn.Sequential(torch.nn.Conv2d(32, 512, 1), torch.nn.BatchNorm2d(512), torch.nn.ReLU())
    for p in list(head.parameters()) + list(tail.parameters()):
        p.requires_grad_(False)
    head.eval()
    tail.eval()
    adapter.train()
    opt = torch.optim.SGD(adapter.parameters(), lr=0.01, momentum=0.9)

    def step(i):
        lo = (i * a.batch) % (len(x) - a.batch + 1)
        xb, yb = x[lo:lo + a.batch], y[lo:lo + a.batch]
        loss = F.cross_entropy(tail(adapter(head(xb))), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    for i in range(a.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(a.warmup + i)
    seconds = time.perf_counter() - t0
    print(json.dumps({"engine": "pytorch", "version": torch.__version__, "batch": a.batch, "threads": a.threads,
                      "steps": a.steps, "seconds": seconds, "images_per_s": a.steps * a.batch / seconds}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("out")
    t = sub.add_parser("train")
    t.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    t.add_argument("--images", type=int, default=2048)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--steps", type=int, default=20)
    t.add_argument("--warmup", type=int, default=2)
    a = p.parse_args()
    if a.cmd == "export":
        export(a.out)
    else:
        train(a)


if __name__ == "__main__":
    sys.exit(main())

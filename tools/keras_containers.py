#!/usr/bin/python3
"""Writes a TensorFlow.js layers model (model.json + shards) in the containers Keras itself uses,
so graft's HDF5 and zip readers are tested on every layer the TF.js fixtures cover:

  DIR/weights.h5      weights only, as Keras 2's save_weights lays them out (layer groups at the
                      root, `layer_names` / `weight_names` attributes, datasets named
                      <layer>/<weight>:0), with DIR/config.json (model.to_json()) beside it
  DIR/full.h5         a full model, as Keras 2's model.save writes it (`model_config` and
                      `keras_version` root attributes, weights under `model_weights`)
  DIR/model.keras     a Keras 3 archive: config.json, metadata.json and model.weights.h5 with
                      layers/<snake_case class>[_i]/vars/<k> in model.layers order
  DIR/tf213.keras     the same archive as tf.keras 2.13-2.15 wrote it: weights under
                      _layer_checkpoint_dependencies/<layer name>/vars/<k>

  DIR/bf16.keras      the Keras 3 archive with bfloat16 weights, as Keras 3 stores them (16-bit
                      words, `dtype` attribute "bfloat16"), and DIR/bf16_ref.keras with the same
                      rounded values as float32

Also converts a Keras weights-only HDF5 + JSON pair into a TF.js model.json (--to-tfjs), so
TensorFlow.js can run a real Keras-written model.

  /usr/bin/python3 tools/keras_containers.py DIR            (DIR holds model.json)
  /usr/bin/python3 tools/keras_containers.py --to-tfjs WEIGHTS.h5 CONFIG.json OUT_DIR
"""
import json
import os
import re
import sys
import zipfile

import h5py
import numpy as np


def tfjs_weights(model_dir):
    """(model JSON, {layer path: [arrays in order]}) of a TF.js model directory."""
    with open(os.path.join(model_dir, "model.json")) as f:
        model = json.load(f)
    weights = {}
    for group in model["weightsManifest"]:
        data = b"".join(open(os.path.join(model_dir, p), "rb").read() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            n = int(np.prod(w["shape"]))
            q = w.get("quantization")
            if q:
                raw = np.frombuffer(data, dtype=np.uint8 if q["dtype"] == "uint8" else np.uint16,
                                    count=n, offset=offset)
                offset += raw.nbytes
                arr = raw.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            else:
                arr = np.frombuffer(data, dtype=np.float32, count=n, offset=offset)
                offset += arr.nbytes
            prefix = w["name"].rsplit("/", 1)[0]
            weights.setdefault(prefix, []).append(arr.reshape(w["shape"]))
    return model["modelTopology"], weights


def layers_of(config):
    cfg = config["config"]
    return cfg if isinstance(cfg, list) else cfg["layers"]


def is_model(layer):
    return layer["class_name"] in ("Functional", "Model", "Sequential")


def layer_weights(layer, weights, prefix=""):
    """[(weight name, array)] of one layer of the config, nested models flattened."""
    name = layer.get("name") or layer["config"]["name"]
    if is_model(layer):
        out = []
        for inner in layers_of(layer):
            out += layer_weights(inner, weights, prefix + name + "/")
        return out
    arrays = weights.get(prefix + name, weights.get(name, []))
    return [(f"{name}/w{i}:0", a) for i, a in enumerate(arrays)]


def write_legacy(group, config, weights):
    names = []
    for layer in layers_of(config):
        name = layer.get("name") or layer["config"]["name"]
        names.append(name.encode())
        g = group.create_group(name)
        ws = layer_weights(layer, weights)
        g.attrs["weight_names"] = [n.encode() for n, _ in ws] if ws else np.zeros((0,), np.float64)
        for n, a in ws:
            g.create_dataset(n, data=a)
    group.attrs["layer_names"] = names


def snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def write_keras3(group, config, weights, prefix=""):
    used = {}
    layers = layers_of(config)
    if config["class_name"] == "Sequential" and layers and layers[0]["class_name"] == "InputLayer":
        layers = layers[1:]
    for layer in layers:
        key = snake_case(layer["class_name"])
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        g = group.create_group(f"layers/{key}")
        name = layer.get("name") or layer["config"]["name"]
        if is_model(layer):
            write_keras3(g, layer, weights, prefix + name + "/")
            continue
        write_vars(g, weights.get(prefix + name, weights.get(name, [])))


def write_vars(group, arrays):
    v = group.create_group("vars")
    for i, a in enumerate(arrays):
        v.create_dataset(str(i), data=a)


def write_tf213(group, config, weights, prefix=""):
    for layer in layers_of(config):
        name = layer.get("name") or layer["config"]["name"]
        g = group.create_group(f"_layer_checkpoint_dependencies/{name}")
        if is_model(layer):
            write_tf213(g, layer, weights, prefix + name + "/")
            continue
        write_vars(g, weights.get(prefix + name, weights.get(name, [])))


def bfloat16_copies(h5_path, bf16_path, ref_path):
    """The weights file with every float32 dataset as bfloat16 bits, and as those values in float32."""
    def walk(src, bf, ref):
        for k, v in src.items():
            if isinstance(v, h5py.Group):
                walk(v, bf.create_group(k), ref.create_group(k))
                continue
            a = np.asarray(v[()], dtype=np.float32)
            bits = (a.reshape(-1).view(np.uint32) >> 16).astype(np.uint16)
            ds = bf.create_dataset(k, data=bits.reshape(a.shape))
            ds.attrs["dtype"] = "bfloat16"
            ref.create_dataset(k, data=(bits.astype(np.uint32) << 16).view(np.float32).reshape(a.shape))
    with h5py.File(h5_path, "r") as src, h5py.File(bf16_path, "w") as bf, h5py.File(ref_path, "w") as ref:
        walk(src, bf, ref)


def containers(model_dir):
    config, weights = tfjs_weights(model_dir)
    config_text = json.dumps(config)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        f.write(config_text)
    with h5py.File(os.path.join(model_dir, "weights.h5"), "w") as f:
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        write_legacy(f, config, weights)
    with h5py.File(os.path.join(model_dir, "full.h5"), "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = config_text
        write_legacy(f.create_group("model_weights"), config, weights)
    h5_path = os.path.join(model_dir, "model.weights.h5")
    with h5py.File(h5_path, "w") as f:
        write_keras3(f, config, weights)
    archive(os.path.join(model_dir, "model.keras"), "3.3.3", config_text, h5_path)
    bfloat16_copies(h5_path, h5_path + ".bf16", h5_path + ".ref")
    archive(os.path.join(model_dir, "bf16.keras"), "3.3.3", config_text, h5_path + ".bf16")
    archive(os.path.join(model_dir, "bf16_ref.keras"), "3.3.3", config_text, h5_path + ".ref")
    with h5py.File(h5_path, "w") as f:
        write_tf213(f, config, weights)
    archive(os.path.join(model_dir, "tf213.keras"), "2.13.1", config_text, h5_path)
    for p in (h5_path, h5_path + ".bf16", h5_path + ".ref"):
        os.remove(p)


def archive(path, keras_version, config_text, weights_h5):
    """A .keras zip: metadata.json, config.json and the weights file as model.weights.h5."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": keras_version, "date_saved": "2026-12-01"}))
        z.writestr("config.json", config_text)
        z.write(weights_h5, "model.weights.h5")


def to_tfjs(weights_h5, config_json, out_dir):
    with open(config_json) as f:
        config = json.load(f)
    os.makedirs(out_dir, exist_ok=True)
    specs, blobs = [], []
    with h5py.File(weights_h5, "r") as f:
        for layer in layers_of(config):
            name = layer.get("name") or layer["config"]["name"]
            if name not in f:
                continue
            g = f[name]
            for wn in g.attrs.get("weight_names", []):
                wn = wn.decode() if isinstance(wn, bytes) else wn
                a = np.asarray(g[wn], dtype=np.float32)
                # TF.js matches weights to variables by name: "<layer>/<weight>".
                specs.append({"name": wn.split(":")[0], "shape": list(a.shape), "dtype": "float32"})
                blobs.append(a.tobytes())
    with open(os.path.join(out_dir, "weights.bin"), "wb") as f:
        f.write(b"".join(blobs))
    with open(os.path.join(out_dir, "model.json"), "w") as f:
        json.dump({"format": "layers-model", "modelTopology": config,
                   "weightsManifest": [{"paths": ["weights.bin"], "weights": specs}]}, f)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--to-tfjs":
        to_tfjs(*sys.argv[2:])
    elif len(sys.argv) == 2:
        containers(sys.argv[1])
    else:
        sys.exit(__doc__)

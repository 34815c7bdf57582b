// graft::keras — Keras models read directly, keeping Keras' layers, names and indices.
//
// Formats, detected by content (never by extension):
//   - HDF5 written by Keras 2 / tf.keras (2.0–2.15) or Keras 3's legacy .h5: a full model
//     (`model_config` root attribute, weights under `model_weights`), or weights only
//     (`save_weights`: layer groups at the root) with the architecture JSON from
//     ImportOptions::config_path (`model.to_json()`);
//   - Keras 3 `.keras` zip archives (config.json + model.weights.h5);
//   - TensorFlow.js layers models (model.json + weight shards; quantised weights dequantised);
//   - an architecture JSON alone: weights are initialised as Keras would (a warning says so).
// The result is an ir::Graph in NCHW with one node per Keras layer where the layer is one op
// (otherwise its helpers are "<layer>/<part>" and its last node carries its name), nodes in
// Keras' model.layers order, initializers named "<layer>/<weight>". Unsupported layers, Python
// Lambdas, and weights that disagree with the config are Errors naming the layer.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graft/ir/graph.h"
#include "graft/ir/onnx_io.h"

namespace graft::keras {

struct ImportOptions {
  std::string config_path;  // architecture JSON for a weights-only HDF5 file
  // Input preprocessing to record: "tf", "caffe", "torch", "none", or "" to recognise
  // keras.applications models by name (and record nothing for others).
  std::string preprocess;
  uint64_t seed = 0;  // for weights the file does not have
  // Sizes for inputs whose Keras shape leaves height or width open (None), NCHW, by input
  // name ("" or the only entry: the model's only input).
  std::map<std::string, std::vector<int64_t>> input_shapes;
};

enum class Format { kOnnx, kHdf5, kKerasZip, kTfjs, kKerasJson };
// What the file at `path` holds, by its first bytes (and, for JSON, its keys). Error naming the
// file when it is none of these.
Format detect(const std::string& path);
bool is_keras(const std::string& path);

// Imports a Keras model file (any Keras format above).
ir::Graph import_model(const std::string& path, const ImportOptions& options = {});

// Any model graft reads: ONNX through ir::load, Keras through import_model. The weights flag
// of `onnx` applies to ONNX files only. A --keras-config given with an ONNX file is an Error.
ir::Graph load_model(const std::string& path, const ir::LoadOptions& onnx = {},
                     const ImportOptions& keras = {});

// Keras' model.layers order for a functional model given as a DAG: `inputs[i]` lists the
// layers feeding layer i (in call order), `outputs` the output layers. Layers are walked
// depth-first from the outputs (inputs in order), depth is the longest path to an output,
// and layers sort by decreasing depth, ties by first visit. Returns layer indices.
std::vector<int> model_layers_order(const std::vector<std::vector<int>>& inputs,
                                    const std::vector<int>& outputs);

// Reorders a graph's nodes into Keras' model.layers order (layers as ir/summary.h groups
// them), as the zoo's models need after being built in creation order.
void order_as_keras(ir::Graph& graph);

}  // namespace graft::keras

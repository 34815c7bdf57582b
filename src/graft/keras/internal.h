// Internal to graft::keras: the parsed Keras model, its building into a graph, and the weight
// stores of each container format.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/ir/graph.h"
#include "graft/keras/keras.h"

namespace graft::keras::internal {

struct ModelSpec;

struct TensorRef {
  std::string layer;
  int tensor = 0;
};

struct LayerSpec {
  std::string name, class_name;
  nlohmann::json config;
  std::vector<std::vector<TensorRef>> calls;  // inbound tensors of each call
  std::vector<nlohmann::json> call_kwargs;     // keyword arguments of each call (an object)
  std::shared_ptr<ModelSpec> nested;          // a Functional/Sequential model used as a layer
};

struct ModelSpec {
  std::string name;
  bool sequential = false;
  std::vector<LayerSpec> layers;  // the config's order: Keras' model.layers
  std::vector<TensorRef> inputs, outputs;
  nlohmann::json build_input_shape;  // a Sequential built without an InputLayer (Keras 3)
};

// A Keras model JSON ({"class_name", "config"}, also wrapped as TF.js' modelTopology or
// {"model_config": …}) parsed; Error naming the layer for a malformed one.
ModelSpec parse_model(const nlohmann::json& model);
// The keras_version the JSON records ("" if none).
std::string keras_version(const nlohmann::json& root);

// Where a layer's weights are in a file: its names from the top model down ({"mobilenet",
// "conv1"}) and Keras 3's container keys ({"layers/functional", "layers/conv2d"}).
struct LayerPath {
  std::vector<std::string> names, keys;
  std::string class_name;
};

// A layer's saved weights in Keras' order, or nullopt-like empty+false when the store has no
// entry for it. `expected` is how many the config implies (to tell a missing group from an
// empty one).
class WeightStore {
 public:
  virtual ~WeightStore() = default;
  // The layer's weights; Error naming the layer and file when the store lacks them.
  virtual std::vector<at::Tensor> layer_weights(const LayerPath& path,
                                                const std::vector<std::vector<int64_t>>& shapes) = 0;
};

// A Keras HDF5 file, read whole (in a child process: libhdf5 may crash on a corrupt file) from
// `origin`, or from `image` (the file's bytes, e.g. a zip member) when that is not empty.
class Hdf5File {
 public:
  Hdf5File(const std::string& origin, const std::string& image = "");
  // A root attribute as a string ("" if absent).
  std::string root_string(const std::string& name) const;
  bool has_group(const std::string& path) const;
  // Weights laid out as Keras 2's save_weights does, under `group` ("" for the root).
  std::unique_ptr<WeightStore> legacy_store(const std::string& group) const;
  // Weights laid out as Keras 3's model.weights.h5.
  std::unique_ptr<WeightStore> keras3_store() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

std::unique_ptr<WeightStore> tfjs_store(const std::string& model_json_path, const nlohmann::json& manifest);


// The members of a zip archive graft needs, by name; Error naming the archive and member.
std::string zip_member(const std::string& path, const std::string& member);

// Builds the graph of a parsed model; assigns weights from `store` (nullptr: keep Keras'
// initialisation). `keras3` selects Keras 3 semantics where they differ from Keras 2.
ir::Graph build_graph(const ModelSpec& spec, WeightStore* store, bool keras3,
                      const ImportOptions& options, const std::string& origin);

}  // namespace graft::keras::internal

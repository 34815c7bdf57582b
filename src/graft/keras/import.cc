// Keras import: format detection by content, and the walk from a file to an ir::Graph.
#include <cstring>
#include <fstream>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/keras/internal.h"
#include "graft/keras/keras.h"

namespace graft::keras {
namespace {

using nlohmann::json;
using namespace internal;

constexpr char kHdf5Magic[] = "\x89HDF\r\n\x1a\n";

std::string head_bytes(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the file (missing or unreadable)");
  std::string b(n, '\0');
  in.read(b.data(), static_cast<std::streamsize>(n));
  b.resize(static_cast<size_t>(in.gcount()));
  return b;
}

json parse_json(const std::string& text, const std::string& origin) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(origin + ": not valid JSON (truncated or corrupt?)");
  return j;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

ir::Graph build(const json& root, const std::string& version, WeightStore* store, const ImportOptions& o,
                const std::string& origin) {
  return with_context(origin, [&] {
    try {
      const ModelSpec spec = parse_model(root);
      return build_graph(spec, store, starts_with(version, "3."), o, origin);
    } catch (const json::exception& e) {
      throw Error(std::string("malformed Keras config: ") + e.what());
    }
  });
}

ir::Graph import_hdf5(const std::string& path, const ImportOptions& o) {
  const Hdf5File file(path);
  const std::string config = file.root_string("model_config");
  std::string version = file.root_string("keras_version");
  json root;
  std::string weights_group;
  if (!o.config_path.empty()) {
    root = parse_json(read_file(o.config_path), o.config_path);
    if (version.empty()) version = keras_version(root);
  } else if (!config.empty()) {
    root = parse_json(config, path + " (model_config)");
  } else {
    throw Error(path + ": a weights-only Keras HDF5 file (save_weights) holds no architecture; give "
                "the model's JSON (model.to_json()) with --keras-config model.json");
  }
  if (!config.empty()) weights_group = "model_weights";
  std::unique_ptr<WeightStore> store;
  if (config.empty() && file.has_group("layers") && file.root_string("layer_names").empty()) {
    store = file.keras3_store();  // Keras 3 model.weights.h5 saved on its own
  } else {
    store = file.legacy_store(weights_group);
  }
  return build(root, version, store.get(), o, path);
}

ir::Graph import_zip(const std::string& path, const ImportOptions& o) {
  const json root = parse_json(zip_member(path, "config.json"), path + " (config.json)");
  std::string version = "3.";
  try {
    const json meta = parse_json(zip_member(path, "metadata.json"), path + " (metadata.json)");
    version = meta.value("keras_version", version);
  } catch (const Error&) {
    // metadata.json is optional; .keras archives come from Keras 3.
  }
  const std::string weights = zip_member(path, "model.weights.h5");
  auto store = Hdf5File(path + ":model.weights.h5", weights).keras3_store();
  return build(root, version, store.get(), o, path);
}

}  // namespace

Format detect(const std::string& path) {
  const std::string head = head_bytes(path, 4096);
  if (head.size() >= 8 && std::memcmp(head.data(), kHdf5Magic, 8) == 0) return Format::kHdf5;
  if (starts_with(head, "PK\x03\x04")) return Format::kKerasZip;
  const size_t first = head.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && head[first] == '{') {
    // A JSON file: a TF.js model.json or a Keras architecture (model.to_json()).
    const json j = parse_json(read_file(path), path);
    if (j.contains("modelTopology")) return Format::kTfjs;
    if (j.contains("class_name") && j.contains("config")) return Format::kKerasJson;
    throw Error(path + ": a JSON file that is neither a Keras model config nor a TensorFlow.js model.json");
  }
  return Format::kOnnx;
}

bool is_keras(const std::string& path) { return detect(path) != Format::kOnnx; }

ir::Graph import_model(const std::string& path, const ImportOptions& o) {
  switch (detect(path)) {
    case Format::kHdf5:
      return import_hdf5(path, o);
    case Format::kKerasZip:
      return import_zip(path, o);
    case Format::kTfjs: {
      const json j = parse_json(read_file(path), path);
      auto store = tfjs_store(path, j.value("weightsManifest", json::array()));
      return build(j, keras_version(j), store.get(), o, path);
    }
    case Format::kKerasJson: {
      if (!o.config_path.empty()) {
        throw Error("--keras-config goes with a weights-only HDF5 file; '" + path +
                    "' is itself an architecture JSON");
      }
      const json j = parse_json(read_file(path), path);
      return build(j, keras_version(j), nullptr, o, path);
    }
    case Format::kOnnx:
      break;
  }
  throw Error(path + ": not a Keras file (HDF5, .keras zip, TF.js model.json or Keras JSON)");
}

ir::Graph load_model(const std::string& path, const ir::LoadOptions& onnx, const ImportOptions& keras) {
  if (detect(path) == Format::kOnnx) {
    if (!keras.config_path.empty()) {
      throw Error("--keras-config goes with a weights-only Keras HDF5 file; '" + path + "' is not one");
    }
    return ir::load(path, onnx);
  }
  return import_model(path, keras);
}

}  // namespace graft::keras

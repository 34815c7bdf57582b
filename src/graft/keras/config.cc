// Keras model JSON: parsing (Keras 2 and Keras 3 forms) into a ModelSpec.
#include <set>

#include "graft/core/error.h"
#include "graft/keras/internal.h"

namespace graft::keras::internal {
namespace {

using nlohmann::json;

bool is_model_class(const std::string& c) {
  return c == "Functional" || c == "Model" || c == "Sequential";
}

// Every __keras_tensor__ in a Keras 3 call's args, in order.
void keras3_tensors(const json& j, std::vector<TensorRef>& out) {
  if (j.is_object()) {
    if (j.value("class_name", "") == "__keras_tensor__") {
      const json& h = j.at("config").at("keras_history");
      out.push_back({h.at(0).get<std::string>(), h.at(2).get<int>()});
      return;
    }
    for (const auto& [k, v] : j.items()) keras3_tensors(v, out);
  } else if (j.is_array()) {
    for (const auto& v : j) keras3_tensors(v, out);
  }
}

std::vector<std::vector<TensorRef>> parse_inbound(const json& inbound, const std::string& layer,
                                                  std::vector<json>& kwargs) {
  std::vector<std::vector<TensorRef>> calls;
  if (inbound.is_null()) return calls;
  if (!inbound.is_array()) throw Error("layer '" + layer + "': inbound_nodes is not a list");
  for (const json& call : inbound) {
    std::vector<TensorRef> refs;
    json kw = json::object();
    if (call.is_object()) {  // Keras 3: {"args": [...], "kwargs": {...}}
      keras3_tensors(call.value("args", json::array()), refs);
      if (call.contains("kwargs") && call["kwargs"].is_object()) kw = call["kwargs"];
    } else if (call.is_array()) {  // Keras 2: [["layer", node, tensor, {kwargs}], ...]
      for (const json& r : call) {
        if (!r.is_array() || r.size() < 3 || !r[0].is_string()) {
          throw Error("layer '" + layer + "': malformed inbound node " + r.dump());
        }
        refs.push_back({r[0].get<std::string>(), r[2].get<int>()});
        if (r.size() > 3 && r[3].is_object()) kw.update(r[3]);
      }
    } else {
      throw Error("layer '" + layer + "': malformed inbound node " + call.dump());
    }
    calls.push_back(std::move(refs));
    kwargs.push_back(std::move(kw));
  }
  return calls;
}

std::vector<TensorRef> parse_io(const json& j, const std::string& what) {
  std::vector<TensorRef> refs;
  if (j.is_null()) return refs;
  if (!j.is_array()) throw Error("model " + what + " is not a list");
  // Keras 3 writes a single ["name", 0, 0] for one input; Keras 2 a list of them.
  if (!j.empty() && j[0].is_string()) return {{j[0].get<std::string>(), j.size() > 2 ? j[2].get<int>() : 0}};
  for (const json& r : j) {
    if (!r.is_array() || r.empty() || !r[0].is_string()) throw Error("malformed model " + what + ": " + r.dump());
    refs.push_back({r[0].get<std::string>(), r.size() > 2 ? r[2].get<int>() : 0});
  }
  return refs;
}

std::string layer_name_of(const json& l, size_t index) {
  if (l.contains("name") && l["name"].is_string()) return l["name"];
  if (l.contains("config") && l["config"].is_object() && l["config"].contains("name")) {
    return l["config"]["name"].get<std::string>();
  }
  throw Error("layer " + std::to_string(index) + " of the config has no name");
}

}  // namespace

std::string keras_version(const json& root) {
  if (root.contains("keras_version") && root["keras_version"].is_string()) return root["keras_version"];
  for (const char* k : {"modelTopology", "model_config"}) {
    if (root.contains(k) && root[k].is_object()) {
      const std::string v = keras_version(root[k]);
      if (!v.empty()) return v;
    }
  }
  return "";
}

ModelSpec parse_model(const json& model_in) {
  const json* m = &model_in;
  // TF.js: {"modelTopology": {...}}, where the topology may itself be {"model_config": {...}}.
  if (m->contains("modelTopology")) m = &(*m)["modelTopology"];
  if (m->contains("model_config")) m = &(*m)["model_config"];
  if (!m->is_object() || !m->contains("class_name") || !m->contains("config")) {
    throw Error("not a Keras model config (no class_name and config)");
  }
  const std::string cls = (*m)["class_name"].is_string() ? (*m)["class_name"].get<std::string>() : "";
  if (!is_model_class(cls)) {
    throw Error("the config describes a '" + cls + "', not a Keras model (Functional, Model or Sequential)");
  }
  ModelSpec spec;
  spec.sequential = cls == "Sequential";
  const json& config = (*m)["config"];
  // Keras 2.0–2.1 Sequential: the config is the list of layers itself.
  const json& layers = config.is_array() ? config : config.value("layers", json::array());
  if (config.is_object()) {
    spec.name = config.value("name", "");
    if (config.contains("build_input_shape")) spec.build_input_shape = config["build_input_shape"];
  }
  if (!layers.is_array() || layers.empty()) throw Error("the model config has no layers");
  std::set<std::string> names;
  for (size_t i = 0; i < layers.size(); ++i) {
    const json& l = layers[i];
    if (!l.is_object() || !l.contains("class_name") || !l["class_name"].is_string()) {
      throw Error("layer " + std::to_string(i) + " of the config has no class_name");
    }
    LayerSpec ls;
    ls.name = layer_name_of(l, i);
    ls.class_name = l["class_name"];
    ls.config = l.value("config", json::object());
    if (!names.insert(ls.name).second) throw Error("two layers are named '" + ls.name + "'");
    if (!spec.sequential) {
      with_context("layer '" + ls.name + "'", [&] {
        ls.calls = parse_inbound(l.value("inbound_nodes", json::array()), ls.name, ls.call_kwargs);
      });
    }
    if (is_model_class(ls.class_name)) {
      ls.nested = std::make_shared<ModelSpec>(with_context(
          "nested model '" + ls.name + "'", [&] { return parse_model(l); }));
    }
    spec.layers.push_back(std::move(ls));
  }
  if (!spec.sequential) {
    spec.inputs = parse_io(config.value("input_layers", json()), "input_layers");
    spec.outputs = parse_io(config.value("output_layers", json()), "output_layers");
    if (spec.inputs.empty() || spec.outputs.empty()) {
      throw Error("the functional model config lists no input_layers or output_layers");
    }
    for (const auto* list : {&spec.inputs, &spec.outputs}) {
      for (const TensorRef& r : *list) {
        if (!names.count(r.layer)) throw Error("the model's inputs/outputs name an unknown layer '" + r.layer + "'");
      }
    }
  }
  return spec;
}

}  // namespace graft::keras::internal

// Closures, head and tail extraction.
#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "graft/core/error.h"
#include "graft/cut/closure.h"
#include "graft/cut/cut.h"
#include "graft/ir/metadata.h"

namespace graft::cut {
namespace {

std::vector<bool> closure(const ir::Graph& g, const std::vector<std::string>& from,
                          const std::set<std::string>& stop, std::vector<std::string>* inputs) {
  std::vector<bool> in(g.nodes.size(), false);
  std::vector<std::string> stack(from.begin(), from.end());
  std::set<std::string> seen;
  while (!stack.empty()) {
    const std::string t = stack.back();
    stack.pop_back();
    if (t.empty() || !seen.insert(t).second) continue;
    const ir::Value& v = g.value(t);
    if (v.is_graph_input) {
      if (inputs && !stop.count(t)) inputs->push_back(t);
      continue;
    }
    if (v.producer < 0 || stop.count(t)) continue;
    if (in[static_cast<size_t>(v.producer)]) continue;
    in[static_cast<size_t>(v.producer)] = true;
    for (const auto& i : g.nodes[static_cast<size_t>(v.producer)].inputs) stack.push_back(i);
  }
  return in;
}

void check_cut(const ir::Graph& g, const std::vector<std::string>& cut) {
  if (cut.empty()) throw Error("the cut is empty: name at least one layer or tensor");
  for (const auto& t : cut) {
    if (!g.has_value(t)) throw Error("no tensor named '" + t + "' in the model");
    const ir::Value& v = g.value(t);
    if (v.is_initializer) throw Error("tensor '" + t + "' is an initializer (a weight), not a place to cut");
    if (v.is_graph_input) throw Error("tensor '" + t + "' is a graph input: cutting there leaves nothing in the head");
  }
}

// The value of a Constant node, for a tail that needs a constant its head also uses.
at::Tensor constant_value(const ir::Node& n) {
  if (auto t = n.attributes.get_tensor("value")) return *t;
  throw Error(n.describe() + " is shared by head and tail and has no tensor value", ErrorKind::kInternal);
}

ir::Graph subgraph(const ir::Graph& g, const std::vector<bool>& keep, const std::vector<std::string>& inputs,
                   const std::vector<std::string>& outputs, const char* role, const Source& source,
                   const std::vector<std::string>& cut) {
  ir::Graph s = ir::derived_from(g, g.name + "_" + role);
  s.inputs = inputs;
  s.outputs = outputs;
  std::set<std::string> names(inputs.begin(), inputs.end());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!keep[i]) continue;
    s.nodes.push_back(g.nodes[i]);
    for (const auto& t : g.nodes[i].inputs) names.insert(t);
    for (const auto& t : g.nodes[i].outputs) names.insert(t);
  }
  for (const auto& t : names) {
    if (t.empty()) continue;
    auto init = g.initializers.find(t);
    if (init != g.initializers.end() && !s.initializers.count(t)) s.initializers[t] = init->second;
    auto v = g.values.find(t);
    if (v != g.values.end()) {
      ir::Value& copy = s.values[t];
      copy.name = t;
      copy.dtype = v->second.dtype;
      copy.shape = v->second.shape;
    }
  }
  s.set_metadata(ir::kMetaRole, role);
  s.erase_metadata(std::string(role) == "head" ? ir::kMetaLabels : ir::kMetaPreprocess);
  std::vector<std::string> constants;
  for (const auto& c : ir::metadata_string_list(g, ir::kMetaConstants)) {
    if (s.initializers.count(c)) constants.push_back(c);
  }
  if (constants.empty()) {
    s.erase_metadata(ir::kMetaConstants);
  } else {
    ir::set_metadata_string_list(s, ir::kMetaConstants, constants);
  }
  nlohmann::json record = {{"part", role}, {"tensors", cut}};
  if (!source.path.empty()) record["source"] = source.path;
  if (!source.sha256.empty()) record["sha256"] = source.sha256;
  s.set_metadata(ir::kMetaCut, record.dump());
  return s;
}

}  // namespace

std::vector<bool> ancestors(const ir::Graph& g, const std::vector<std::string>& tensors) {
  return closure(g, tensors, {}, nullptr);
}

std::vector<bool> tail_nodes(const ir::Graph& g, const std::vector<std::string>& cut,
                             std::vector<std::string>* reached_inputs) {
  return closure(g, g.outputs, std::set<std::string>(cut.begin(), cut.end()), reached_inputs);
}

std::vector<std::string> leaks(const ir::Graph& g, const std::vector<std::string>& cut) {
  std::vector<std::string> reached;
  tail_nodes(g, cut, &reached);
  return reached;
}

ir::Graph head(const ir::Graph& g, const std::vector<std::string>& cut, const Source& source) {
  check_cut(g, cut);
  const std::vector<bool> keep = ancestors(g, cut);
  std::vector<std::string> inputs;
  std::set<std::string> used;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (keep[i]) used.insert(g.nodes[i].inputs.begin(), g.nodes[i].inputs.end());
  }
  for (const auto& in : g.inputs) {
    if (used.count(in)) inputs.push_back(in);
  }
  ir::Graph h = subgraph(g, keep, inputs, cut, "head", source, cut);
  h.reindex();
  return h;
}

ir::Graph tail(const ir::Graph& g, const std::vector<std::string>& cut, const Source& source) {
  check_cut(g, cut);
  std::vector<std::string> reached;
  std::vector<bool> keep = tail_nodes(g, cut, &reached);
  if (!reached.empty()) {
    throw Error("the cut does not separate the inputs from the outputs: the outputs still need "
                "graph input '" + reached[0] + "' without passing through it; add the tensors "
                "that cross it (graft cuts MODEL --near LAYER lists a layer's crossing tensors)");
  }
  for (const auto& t : cut) {
    const ir::Value& v = g.value(t);
    if (v.dtype == ir::kUndefined) {
      throw Error("the type of tensor '" + t + "' is unknown, so the tail cannot declare it as an "
                  "input; give the model's input shape (--input-shape)");
    }
  }
  // A Constant node the head also needs becomes an initializer of the tail, and so does an
  // Identity of an initializer (PyTorch's exporter aliases initializers it deduplicated that
  // way), so that each node of the source lands in exactly one half.
  const std::vector<bool> in_head = ancestors(g, cut);
  std::vector<std::pair<std::string, at::Tensor>> frozen;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (!keep[i] || !in_head[i] || !n.domain.empty() || n.outputs.empty()) continue;
    if (n.op_type == "Constant" && n.inputs.empty()) {
      keep[i] = false;
      frozen.emplace_back(n.outputs.at(0), constant_value(n));
    } else if (n.op_type == "Identity" && n.inputs.size() == 1 && g.initializers.count(n.inputs[0])) {
      keep[i] = false;
      frozen.emplace_back(n.outputs.at(0), g.initializers.at(n.inputs[0]));
    }
  }
  ir::Graph t = subgraph(g, keep, cut, g.outputs, "tail", source, cut);
  for (auto& [name, value] : frozen) {
    t.initializers[name] = value;
    t.values.erase(name);
  }
  // Outputs of the original with a symbolic batch keep it; tail inputs are declared as known.
  t.reindex();
  return t;
}

}  // namespace graft::cut

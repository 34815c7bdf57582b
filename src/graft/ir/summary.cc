#include "graft/ir/summary.h"

#include <onnx/defs/schema.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "graft/ir/metadata.h"

#include <nlohmann/json.hpp>

namespace graft::ir {
namespace {

enum class Role { kNone, kTrainable, kNonTrainable };

// What a node's i-th input is, if it is an initializer: a weight, a running statistic, or a
// constant.
Role input_role(const Node& n, size_t i, const at::Tensor& t) {
  const std::string& op = n.op_type;
  if (!t.is_floating_point()) return Role::kNone;
  if (op == "Conv" || op == "ConvTranspose" || op == "Gemm") {
    return i >= 1 ? Role::kTrainable : Role::kNone;
  }
  if (op == "MatMul" || op == "PRelu") return Role::kTrainable;
  if (op == "BatchNormalization") {
    if (i == 1 || i == 2) return Role::kTrainable;
    if (i == 3 || i == 4) return Role::kNonTrainable;
    return Role::kNone;
  }
  if (op == "InstanceNormalization" || op == "LayerNormalization") {
    return i >= 1 ? Role::kTrainable : Role::kNone;
  }
  if ((op == "Add" || op == "Mul") && t.numel() > 1) return Role::kTrainable;
  return Role::kNone;
}

std::optional<std::vector<int64_t>> sizes_of(const Graph& g, const std::string& name) {
  auto it = g.values.find(name);
  if (it == g.values.end()) return std::nullopt;
  return known_sizes(it->second.shape);
}

int64_t product(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t p = 1;
  for (size_t i = from; i < v.size(); ++i) p *= v[i];
  return p;
}

}  // namespace

std::vector<int> layer_nodes(const Graph& g) {
  std::unordered_map<std::string, int> by_name;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!g.nodes[i].name.empty()) by_name.emplace(g.nodes[i].name, static_cast<int>(i));
  }
  std::vector<int> owner(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    owner[i] = static_cast<int>(i);
    const std::string& name = g.nodes[i].name;
    // The longest prefix "<L>" of "<L>/<part>" that names a later node.
    for (size_t slash = name.rfind('/'); slash != std::string::npos && slash > 0;
         slash = name.rfind('/', slash - 1)) {
      auto it = by_name.find(name.substr(0, slash));
      if (it != by_name.end() && it->second > static_cast<int>(i)) {
        owner[i] = it->second;
        break;
      }
    }
  }
  return owner;
}

std::vector<int64_t> node_rows(const Graph& g) {
  const std::vector<int> owner = layer_nodes(g);
  std::vector<int64_t> rows(g.nodes.size());
  int64_t next = static_cast<int64_t>(g.inputs.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (owner[i] == static_cast<int>(i)) rows[i] = next++;
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) rows[i] = rows[static_cast<size_t>(owner[i])];
  return rows;
}

int64_t row_index(const Graph& g, int node_index) {
  return node_rows(g).at(static_cast<size_t>(node_index));
}

int node_at_row(const Graph& g, int64_t row) {
  const std::vector<int> owner = layer_nodes(g);
  const std::vector<int64_t> rows = node_rows(g);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (rows[i] == row && owner[i] == static_cast<int>(i)) return static_cast<int>(i);
  }
  return -1;
}

std::optional<int64_t> node_macs(const Graph& g, const Node& n) {
  const std::string& op = n.op_type;
  if (op == "Conv" || op == "ConvTranspose") {
    if (n.inputs.size() < 2 || n.outputs.empty()) return std::nullopt;
    auto w = sizes_of(g, n.inputs[1]);
    auto x = sizes_of(g, op == "Conv" ? n.outputs[0] : n.inputs[0]);
    if (!w || !x || w->size() < 2) return std::nullopt;
    return product(*x) * product(*w, 1);
  }
  if (op == "Gemm") {
    if (n.inputs.size() < 2 || n.outputs.empty()) return std::nullopt;
    auto a = sizes_of(g, n.inputs[0]);
    auto y = sizes_of(g, n.outputs[0]);
    if (!a || !y || a->size() != 2) return std::nullopt;
    const int64_t k = n.attributes.get_int("transA", 0) ? (*a)[0] : (*a)[1];
    return product(*y) * k;
  }
  if (op == "MatMul") {
    if (n.inputs.size() < 2 || n.outputs.empty()) return std::nullopt;
    auto a = sizes_of(g, n.inputs[0]);
    auto y = sizes_of(g, n.outputs[0]);
    if (!a || !y || a->empty()) return std::nullopt;
    return product(*y) * a->back();
  }
  // Other ONNX ops do no multiply-accumulates we count; an op ONNX does not know could do any.
  int64_t opset = 0;
  for (const auto& o : g.opset_imports) {
    if ((o.domain == "ai.onnx" ? "" : o.domain) == n.domain) opset = o.version;
  }
  if (onnx::OpSchemaRegistry::Instance()->GetSchema(n.op_type, static_cast<int>(opset),
                                                    n.domain) == nullptr) {
    return std::nullopt;
  }
  return 0;
}

Summary summarize(const Graph& g) {
  Summary s;
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    SummaryRow r;
    r.index = static_cast<int64_t>(i);
    r.name = g.inputs[i];
    r.op_type = "Input";
    r.outputs = {g.inputs[i]};
    r.output_shapes = {g.value(g.inputs[i]).shape};
    r.macs = 0;
    s.rows.push_back(std::move(r));
  }
  const std::set<std::string> constants = constant_initializers(g);
  const std::vector<int> owner = layer_nodes(g);
  const std::vector<int64_t> rows = node_rows(g);
  std::unordered_set<std::string> counted;
  std::unordered_map<int, size_t> row_of_layer;  // layer node -> position in s.rows
  // Rows come in layer order; a helper (which precedes its layer node) opens its layer's row.
  for (size_t ni = 0; ni < g.nodes.size(); ++ni) {
    const int layer = owner[ni];
    if (!row_of_layer.count(layer)) {
      const Node& ln = g.nodes[static_cast<size_t>(layer)];
      SummaryRow r;
      r.index = rows[ni];
      r.name = ln.name;
      r.op_type = ln.op_type;
      r.outputs = ln.outputs;
      for (const auto& o : ln.outputs) {
        r.output_shapes.push_back(o.empty() ? std::nullopt : g.value(o).shape);
      }
      r.macs = 0;
      row_of_layer[layer] = s.rows.size();
      s.rows.push_back(std::move(r));
    }
    SummaryRow& r = s.rows[row_of_layer[layer]];
    const Node& n = g.nodes[ni];
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& in = n.inputs[i];
      if (in.empty()) continue;
      auto init = g.initializers.find(in);
      if (init != g.initializers.end()) {
        if (constants.count(in) || !counted.insert(in).second) continue;
        const Role role = input_role(n, i, init->second);
        if (role == Role::kNone) continue;
        r.params += init->second.numel();
        if (role == Role::kNonTrainable) r.non_trainable += init->second.numel();
        continue;
      }
      const Value& v = g.value(in);
      if (v.producer >= 0 && owner[static_cast<size_t>(v.producer)] == layer) continue;  // inside the layer
      const std::string from = v.producer >= 0 ? g.nodes[static_cast<size_t>(owner[static_cast<size_t>(v.producer)])].name : in;
      if (std::find(r.inputs_from.begin(), r.inputs_from.end(), from) == r.inputs_from.end()) {
        r.inputs_from.push_back(from);
      }
    }
    const std::optional<int64_t> macs = node_macs(g, n);
    if (r.macs && macs) {
      *r.macs += *macs;
    } else {
      r.macs = std::nullopt;
    }
  }
  // Parameters a layer has beyond its operands (graft.extra_params), in its row.
  const auto extra = nlohmann::json::parse(g.get_metadata(kMetaExtraParams).value_or("{}"), nullptr, false);
  if (extra.is_object()) {
    for (auto& [layer, node] : row_of_layer) {
      auto it = extra.find(g.nodes[static_cast<size_t>(layer)].name);
      if (it == extra.end() || !it->is_number_integer() || it->get<int64_t>() < 0) continue;
      s.rows[node].params += it->get<int64_t>();
      s.rows[node].non_trainable += it->get<int64_t>();
    }
  }
  for (const SummaryRow& r : s.rows) {
    if (r.op_type == "Input") continue;
    s.params += r.params;
    s.non_trainable += r.non_trainable;
    if (r.macs) {
      s.macs += *r.macs;
    } else {
      ++s.nodes_with_unknown_macs;
    }
  }
  s.trainable = s.params - s.non_trainable;
  return s;
}

}  // namespace graft::ir

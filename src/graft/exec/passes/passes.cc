// The pass driver, the protected tensors, and the rewriting helpers the passes share.
#include "graft/exec/passes/passes.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "graft/exec/passes/rewrite.h"
#include "graft/ir/metadata.h"
#include "graft/ir/shapes.h"
#include "graft/ops/kernel.h"

namespace graft::exec::passes {

std::set<std::string> protected_tensors(const ir::Graph& g, const std::set<std::string>& keep) {
  std::set<std::string> p(keep.begin(), keep.end());
  p.insert(g.outputs.begin(), g.outputs.end());
  const auto record = nlohmann::json::parse(g.get_metadata(ir::kMetaCut).value_or("{}"), nullptr, false);
  if (!record.is_object()) return p;
  auto add_strings = [&](const nlohmann::json& j) {
    if (j.is_string()) p.insert(j.get<std::string>());
    if (j.is_array()) {
      for (const auto& s : j) {
        if (s.is_string()) p.insert(s.get<std::string>());
      }
    }
  };
  add_strings(record.value("tensors", nlohmann::json()));
  add_strings(record.value("split_point", nlohmann::json()));
  for (const char* part : {"head", "tail"}) {
    if (record.contains(part) && record[part].is_object()) {
      add_strings(record[part].value("hybrid_tensors", nlohmann::json()));
    }
  }
  if (record.contains("adapters") && record["adapters"].is_array()) {
    for (const auto& a : record["adapters"]) {
      if (a.is_object()) add_strings(a.value("output", nlohmann::json()));
    }
  }
  return p;
}

int sole_consumer(const ir::Graph& g, const std::string& value) {
  if (!g.has_value(value)) return -1;
  const ir::Value& v = g.value(value);
  if (v.is_graph_output || v.consumers.size() != 1) return -1;
  return v.consumers[0];
}

const at::Tensor* constant(const ir::Graph& g, const std::string& name) {
  auto it = g.initializers.find(name);
  return it == g.initializers.end() ? nullptr : &it->second;
}

void replace_uses(ir::Graph& g, const std::string& from, const std::string& to) {
  for (auto& n : g.nodes) {
    for (auto& in : n.inputs) {
      if (in == from) in = to;
    }
  }
}

void erase_nodes(ir::Graph& g, const std::vector<bool>& dead) {
  std::vector<ir::Node> kept;
  kept.reserve(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(kept);
  std::unordered_set<std::string> used(g.inputs.begin(), g.inputs.end());
  used.insert(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes) {
    used.insert(n.inputs.begin(), n.inputs.end());
    used.insert(n.outputs.begin(), n.outputs.end());
  }
  for (auto it = g.initializers.begin(); it != g.initializers.end();) {
    it = used.count(it->first) ? std::next(it) : g.initializers.erase(it);
  }
  for (auto it = g.values.begin(); it != g.values.end();) {
    it = used.count(it->first) ? std::next(it) : g.values.erase(it);
  }
  g.reindex();
}

std::string fresh_name(const ir::Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 1; g.has_value(name) || g.initializers.count(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

std::string add_initializer(ir::Graph& g, const std::string& base, const at::Tensor& t) {
  const std::string name = fresh_name(g, base);
  g.initializers[name] = t.contiguous();
  ir::Value v;
  v.name = name;
  v.dtype = ir::dtype_of(t.scalar_type());
  v.shape = ir::Shape(t.sizes().begin(), t.sizes().end());
  v.is_initializer = true;
  g.values[name] = v;
  return name;
}

void import_graft_domain(ir::Graph& g) {
  for (const auto& o : g.opset_imports) {
    if (o.domain == kDomain) return;
  }
  g.opset_imports.push_back({kDomain, 1});
}

bool is_conv(const ir::Node& n) {
  return (n.domain.empty() && n.op_type == "Conv") || (n.domain == kDomain && n.op_type == kFusedConv);
}

std::optional<std::vector<int64_t>> zero_spatial_pads(const ir::Graph& g, const ir::Node& pad) {
  if (!pad.domain.empty() || pad.op_type != "Pad" || pad.inputs.empty() || pad.outputs.size() != 1 ||
      pad.attributes.get_string("mode", "constant") != "constant") {
    return std::nullopt;
  }
  std::vector<int64_t> amounts;
  double value = 0;
  if (g.opset() < 11) {
    amounts = pad.attributes.get_ints("pads");
    value = pad.attributes.get_float("value", 0.0f);
  } else {
    const at::Tensor* p = pad.inputs.size() > 1 && !pad.inputs[1].empty() ? constant(g, pad.inputs[1]) : nullptr;
    if (p == nullptr) return std::nullopt;
    amounts = ops::to_int64_vector(*p);
    if (pad.inputs.size() > 2 && !pad.inputs[2].empty()) {
      const at::Tensor* v = constant(g, pad.inputs[2]);
      if (v == nullptr || v->numel() != 1) return std::nullopt;
      value = v->to(at::kDouble).item<double>();
    }
    if (pad.inputs.size() > 3 && !pad.inputs[3].empty()) return std::nullopt;  // axes (opset 18)
  }
  const size_t rank = amounts.size() / 2;
  if (value != 0 || amounts.size() % 2 != 0 || rank < 3) return std::nullopt;
  if (amounts[0] != 0 || amounts[1] != 0 || amounts[rank] != 0 || amounts[rank + 1] != 0) return std::nullopt;
  std::vector<int64_t> spatial;
  for (size_t d = 2; d < rank; ++d) spatial.push_back(amounts[d]);
  for (size_t d = 2; d < rank; ++d) spatial.push_back(amounts[rank + d]);
  for (int64_t a : spatial) {
    if (a < 0) return std::nullopt;
  }
  return spatial;
}

std::vector<PassReport> optimize(ir::Graph& g, const std::set<std::string>& keep) {
  struct Pass {
    const char* name;
    int (*run)(ir::Graph&, const std::set<std::string>&);
  };
  static const Pass kPasses[] = {
      {"remove_identity", remove_identity},
      {"fold_constants", fold_constants},
      {"remove_dead", remove_dead},
      {"fold_batchnorm", fold_batchnorm},
      {"fold_pad_into_conv", fold_pad_into_conv},
      {"fold_pad_into_pool", fold_pad_into_pool},
      {"fold_scale_into_conv", fold_scale_into_conv},
      {"recognise_patterns", recognise_patterns},
      {"fuse_conv_add", fuse_conv_add},
      {"fuse_conv_activation", fuse_conv_activation},
  };
  std::vector<PassReport> reports;
  for (const auto& p : kPasses) reports.push_back({p.name, 0});
  // Fusions check shapes (a residual Add must not broadcast): make sure they are known.
  ir::infer_shapes(g);
  const std::set<std::string> protect = protected_tensors(g, keep);
  for (int round = 0; round < 4; ++round) {
    int total = 0;
    for (size_t i = 0; i < std::size(kPasses); ++i) {
      const int n = kPasses[i].run(g, protect);
      reports[i].rewrites += n;
      total += n;
    }
    if (total == 0) break;
  }
  return reports;
}

}  // namespace graft::exec::passes

// Conv + activation fusion: an activation whose input is a Conv's (or FusedConv's, or
// FusedMatMul's) output that nothing else reads is applied in place on that result, as the
// fused node's `activation`. Clip needs constant bounds.
#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {
namespace {

// The activation's parameters, or false if it cannot be fused.
bool activation_params(const ir::Graph& g, const ir::Node& n, std::string* name, std::vector<float>* params) {
  const auto& a = n.attributes;
  if (n.domain == kDomain && (n.op_type == "Silu" || n.op_type == "Gelu")) {
    const bool tanh = n.attributes.get_string("approximate", "none") == "tanh";
    *name = n.op_type == "Gelu" && tanh ? "GeluTanh" : n.op_type;
    return true;
  }
  if (!n.domain.empty()) return false;
  *name = n.op_type;
  if (n.op_type == "Relu" || n.op_type == "Sigmoid" || n.op_type == "Tanh" || n.op_type == "HardSwish") return true;
  if (n.op_type == "LeakyRelu") {
    *params = {a.get_float("alpha", 0.01f)};
    return true;
  }
  if (n.op_type == "HardSigmoid") {
    *params = {a.get_float("alpha", 0.2f), a.get_float("beta", 0.5f)};
    return true;
  }
  if (n.op_type == "Clip") {
    float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
    if (g.opset() < 11) {
      lo = a.get_float("min", lo);
      hi = a.get_float("max", hi);
    } else {
      for (size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
        if (n.inputs[k].empty()) continue;
        const at::Tensor* c = constant(g, n.inputs[k]);
        if (c == nullptr || c->numel() != 1) return false;
        (k == 1 ? lo : hi) = c->to(at::kFloat).item<float>();
      }
    }
    *params = {lo, hi};
    return true;
  }
  return false;
}

}  // namespace

int fuse_conv_activation(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node act = g.nodes[i];
    std::vector<float> params;
    std::string name;
    if (act.inputs.empty() || act.outputs.size() != 1 || !activation_params(g, act, &name, &params)) continue;
    const std::string x = act.inputs[0];
    if (x.empty() || protect.count(x)) continue;
    const ir::Value& xv = g.value(x);
    if (xv.producer < 0 || dead[static_cast<size_t>(xv.producer)] || sole_consumer(g, x) != static_cast<int>(i)) continue;
    ir::Node& conv = g.nodes[static_cast<size_t>(xv.producer)];
    const bool matmul = conv.domain == kDomain && conv.op_type == "FusedMatMul";
    if ((!is_conv(conv) && !matmul) || conv.outputs.size() != 1) continue;
    if (!conv.attributes.get_string("activation", "").empty()) continue;
    import_graft_domain(g);
    conv.domain = kDomain;
    if (!matmul) conv.op_type = kFusedConv;
    conv.attributes.set(ir::Attribute::of_string("activation", name));
    if (!params.empty()) conv.attributes.set(ir::Attribute::of_floats("activation_params", params));
    conv.outputs[0] = act.outputs[0];
    dead[i] = true;
    ++fused;
  }
  if (fused) erase_nodes(g, dead);
  return fused;
}

}  // namespace graft::exec::passes

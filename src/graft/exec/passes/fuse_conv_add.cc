// Conv + Add fusion: Add(Conv(x), z) with z of exactly the output's shape (a residual
// connection, no broadcasting) becomes FusedConv(x, W, B, z), which adds z in place into the
// convolution's result instead of allocating a third tensor.
#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {

int fuse_conv_add(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node add = g.nodes[i];
    if (!add.domain.empty() || add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1) continue;
    const auto out = ir::known_sizes(g.value(add.outputs[0]).shape);
    if (!out || g.value(add.outputs[0]).dtype != ir::kFloat) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string p = add.inputs[static_cast<size_t>(side)], z = add.inputs[static_cast<size_t>(1 - side)];
      if (p.empty() || z.empty() || p == z || protect.count(p)) continue;
      const ir::Value& pv = g.value(p);
      if (pv.producer < 0 || dead[static_cast<size_t>(pv.producer)] || sole_consumer(g, p) != static_cast<int>(i)) continue;
      ir::Node& conv = g.nodes[static_cast<size_t>(pv.producer)];
      if (!is_conv(conv) || conv.outputs.size() != 1 || conv.inputs.size() > 3) continue;
      if (!conv.attributes.get_string("activation", "").empty()) continue;
      if (ir::known_sizes(pv.shape) != out || ir::known_sizes(g.value(z).shape) != out) continue;
      import_graft_domain(g);
      conv.domain = kDomain;
      conv.op_type = kFusedConv;
      conv.inputs.resize(3);
      conv.inputs.push_back(z);
      conv.outputs[0] = add.outputs[0];
      dead[i] = true;
      ++fused;
      break;
    }
  }
  if (fused) erase_nodes(g, dead);
  return fused;
}

}  // namespace graft::exec::passes

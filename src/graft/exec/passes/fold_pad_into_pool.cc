// Pad folding for average pooling: PyTorch exports avg_pool2d(padding=p, count_include_pad=True)
// as a zero Pad and an unpadded AveragePool (Inception v3 has nine). Averaging over padded zeros
// is an AveragePool with those pads that counts them, so the Pad goes into the pool's pads.
#include <algorithm>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {

int fold_pad_into_pool(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& pad = g.nodes[i];
    if (!pad.domain.empty() || pad.op_type != "Pad" || pad.outputs.size() != 1) continue;
    const std::string y = pad.outputs[0];
    if (protect.count(y)) continue;
    const int c = sole_consumer(g, y);
    if (c < 0 || dead[static_cast<size_t>(c)]) continue;
    ir::Node& pool = g.nodes[static_cast<size_t>(c)];
    if (!pool.domain.empty() || pool.op_type != "AveragePool" || pool.inputs.empty() || pool.inputs[0] != y) continue;
    const auto amounts = zero_spatial_pads(g, pad);
    if (!amounts) continue;
    const size_t spatial = amounts->size() / 2;
    // With ceil_mode a window may hang over the padded edge, where the counts differ.
    if (pool.attributes.get_string("auto_pad", "NOTSET") != "NOTSET" || pool.attributes.get_int("ceil_mode", 0) != 0) {
      continue;
    }
    std::vector<int64_t> pads = pool.attributes.get_ints("pads", std::vector<int64_t>(2 * spatial, 0));
    if (pads.size() != 2 * spatial) continue;
    // The pool's own pads must already count, or be absent, for one count rule to cover both.
    const bool own = std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p != 0; });
    if (own && pool.attributes.get_int("count_include_pad", 0) == 0) continue;
    for (size_t d = 0; d < 2 * spatial; ++d) pads[d] += (*amounts)[d];
    pool.attributes.set(ir::Attribute::of_ints("pads", pads));
    pool.attributes.set(ir::Attribute::of_int("count_include_pad", 1));
    pool.inputs[0] = pad.inputs[0];
    dead[i] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes

// Pad folding: a constant-mode Pad with value 0 that pads only the spatial axes (non-negative
// amounts) in front of a Conv is the Conv's own padding — Keras' ZeroPadding2D before a strided
// DepthwiseConv2D, as in MobileNet. The Pad goes; its amounts add to the Conv's pads.
#include <ATen/ATen.h>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {

int fold_pad_into_conv(ir::Graph& g, const std::set<std::string>& protect) {
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node pad = g.nodes[i];
    if (!pad.domain.empty() || pad.op_type != "Pad" || pad.outputs.size() != 1) continue;
    const std::string y = pad.outputs[0];
    if (protect.count(y)) continue;
    const int c = sole_consumer(g, y);
    if (c < 0 || dead[static_cast<size_t>(c)]) continue;
    ir::Node& conv = g.nodes[static_cast<size_t>(c)];
    if (!is_conv(conv) || conv.inputs.empty() || conv.inputs[0] != y) continue;
    if (conv.attributes.get_string("auto_pad", "NOTSET") != "NOTSET") continue;

    const auto amounts = zero_spatial_pads(g, pad);
    if (!amounts) continue;
    const size_t spatial = amounts->size() / 2;
    std::vector<int64_t> pads = conv.attributes.get_ints("pads", std::vector<int64_t>(2 * spatial, 0));
    if (pads.size() != 2 * spatial) continue;
    for (size_t d = 0; d < 2 * spatial; ++d) pads[d] += (*amounts)[d];
    conv.attributes.set(ir::Attribute::of_ints("pads", pads));
    conv.inputs[0] = pad.inputs[0];
    dead[i] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes

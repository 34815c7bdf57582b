// Pad folding: a constant-mode Pad with value 0 that pads only the spatial axes (non-negative
// amounts) in front of a Conv is the Conv's own padding — Keras' ZeroPadding2D before a strided
// DepthwiseConv2D, as in MobileNet. The Pad goes; its amounts add to the Conv's pads.
#include <ATen/ATen.h>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"
#include "graft/ops/kernel.h"

namespace graft::exec::passes {

int fold_pad_into_conv(ir::Graph& g, const std::set<std::string>& protect) {
  int64_t opset = g.opset();
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node pad = g.nodes[i];
    if (!pad.domain.empty() || pad.op_type != "Pad" || pad.inputs.empty() || pad.outputs.size() != 1) continue;
    if (pad.attributes.get_string("mode", "constant") != "constant") continue;
    const std::string y = pad.outputs[0];
    if (protect.count(y)) continue;
    const int c = sole_consumer(g, y);
    if (c < 0 || dead[static_cast<size_t>(c)]) continue;
    ir::Node& conv = g.nodes[static_cast<size_t>(c)];
    if (!is_conv(conv) || conv.inputs.empty() || conv.inputs[0] != y) continue;
    if (conv.attributes.get_string("auto_pad", "NOTSET") != "NOTSET") continue;

    std::vector<int64_t> amounts;
    double value = 0;
    if (opset < 11) {
      amounts = pad.attributes.get_ints("pads");
      value = pad.attributes.get_float("value", 0.0f);
    } else {
      const at::Tensor* p = pad.inputs.size() > 1 && !pad.inputs[1].empty() ? constant(g, pad.inputs[1]) : nullptr;
      if (p == nullptr) continue;
      amounts = ops::to_int64_vector(*p);
      if (pad.inputs.size() > 2 && !pad.inputs[2].empty()) {
        const at::Tensor* v = constant(g, pad.inputs[2]);
        if (v == nullptr || v->numel() != 1) continue;
        value = v->to(at::kDouble).item<double>();
      }
      if (pad.inputs.size() > 3 && !pad.inputs[3].empty()) continue;  // axes (opset 18)
    }
    const size_t rank = amounts.size() / 2;
    if (value != 0 || amounts.size() % 2 != 0 || rank < 3) continue;
    const size_t spatial = rank - 2;
    bool ok = amounts[0] == 0 && amounts[1] == 0 && amounts[rank] == 0 && amounts[rank + 1] == 0;
    for (int64_t a : amounts) ok = ok && a >= 0;
    if (!ok) continue;
    std::vector<int64_t> pads = conv.attributes.get_ints("pads", std::vector<int64_t>(2 * spatial, 0));
    if (pads.size() != 2 * spatial) continue;
    for (size_t d = 0; d < spatial; ++d) {
      pads[d] += amounts[2 + d];
      pads[spatial + d] += amounts[rank + 2 + d];
    }
    conv.attributes.set(ir::Attribute::of_ints("pads", pads));
    conv.inputs[0] = pad.inputs[0];
    dead[i] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes

// Scale folding: a Conv whose only reader multiplies it by a constant that is one value per
// output channel (or one for all) is a Conv with scaled weights and bias, W' = W * s and
// b' = b * s. InceptionResNetV2's residual blocks scale each branch's last convolution this way
// before the sum, which then fuses into the convolution too (fuse_conv_add).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {
namespace {

// `s` as one value per output channel of a rank-`rank` Conv output with `channels` channels.
std::optional<at::Tensor> per_channel(const at::Tensor& s, int64_t rank, int64_t channels) {
  if (!s.is_floating_point() || s.dim() > rank) return std::nullopt;
  if (s.numel() == 1) return s.reshape({1}).expand({channels});
  // Right-aligned against (N, C, spatial…): only the channel axis may be longer than 1.
  const int64_t channel_axis = s.dim() - (rank - 1);
  for (int64_t d = 0; d < s.dim(); ++d) {
    if (d != channel_axis && s.size(d) != 1) return std::nullopt;
  }
  if (channel_axis < 0 || s.size(channel_axis) != channels) return std::nullopt;
  return s.reshape({channels});
}

}  // namespace

int fold_scale_into_conv(ir::Graph& g, const std::set<std::string>& protect) {
  c10::InferenceMode guard;
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node mul = g.nodes[i];
    if (!mul.domain.empty() || mul.op_type != "Mul" || mul.inputs.size() != 2 || mul.outputs.size() != 1) continue;
    for (int side = 0; side < 2; ++side) {
      const std::string x = mul.inputs[static_cast<size_t>(side)];
      const at::Tensor* s = constant(g, mul.inputs[static_cast<size_t>(1 - side)]);
      if (s == nullptr || x.empty() || !g.has_value(x)) continue;
      const ir::Value& xv = g.value(x);
      if (xv.producer < 0 || protect.count(x) || sole_consumer(g, x) != static_cast<int>(i)) continue;
      ir::Node& conv = g.nodes[static_cast<size_t>(xv.producer)];
      // A plain Conv (a fused activation or sum would not commute with the scale).
      if (dead[static_cast<size_t>(xv.producer)] || !conv.domain.empty() || conv.op_type != "Conv" ||
          conv.outputs.size() != 1 || conv.inputs.size() < 2) {
        continue;
      }
      const at::Tensor* w = constant(g, conv.inputs[1]);
      if (w == nullptr || !w->is_floating_point() || w->dim() < 3) continue;
      const int64_t channels = w->size(0);
      const auto scale = per_channel(*s, w->dim(), channels);
      if (!scale) continue;
      const at::Tensor* b = conv.inputs.size() > 2 && !conv.inputs[2].empty() ? constant(g, conv.inputs[2]) : nullptr;
      if (conv.inputs.size() > 2 && !conv.inputs[2].empty() && b == nullptr) continue;
      std::vector<int64_t> view(static_cast<size_t>(w->dim()), 1);
      view[0] = channels;
      const at::Tensor sd = scale->to(at::kDouble);
      const at::Tensor w2 = w->to(at::kDouble) * sd.reshape(view);
      conv.inputs.resize(b ? 3 : 2);
      conv.inputs[1] = add_initializer(g, conv.name + "/scaled_W", w2.to(w->scalar_type()));
      if (b) conv.inputs[2] = add_initializer(g, conv.name + "/scaled_B", (b->to(at::kDouble) * sd).to(b->scalar_type()));
      conv.outputs[0] = mul.outputs[0];
      dead[i] = true;
      ++folded;
      break;
    }
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes

// Pad: constant, reflect and edge modes over any axes; pads (and the constant) are attributes
// before opset 11 and inputs from 11 on. Negative pads crop.
#include <ATen/ATen.h>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

// Indices into an axis of length n extended by (b, e) positions: reflect mirrors without
// repeating the edge, edge repeats it.
at::Tensor source_indices(int64_t n, int64_t b, int64_t e, bool reflect) {
  at::Tensor i = at::arange(-b, n + e, at::kLong);
  if (!reflect) return at::clamp(i, 0, n - 1);
  if (n == 1) return at::zeros_like(i);
  const int64_t period = 2 * (n - 1);
  at::Tensor m = at::remainder(i, period);
  return at::where(m >= n, period - m, m);
}

at::Tensor pad(const at::Tensor& x, const std::vector<int64_t>& pads, const std::string& mode,
               const at::Scalar& value) {
  const int64_t rank = x.dim();
  if (static_cast<int64_t>(pads.size()) != 2 * rank) {
    throw std::invalid_argument("pads has " + std::to_string(pads.size()) + " values for a rank-" +
                                std::to_string(rank) + " input (expected " +
                                std::to_string(2 * rank) + ")");
  }
  if (mode == "constant") {
    std::vector<int64_t> tp;
    for (int64_t i = rank; i-- > 0;) {
      tp.push_back(pads[static_cast<size_t>(i)]);
      tp.push_back(pads[static_cast<size_t>(i + rank)]);
    }
    return at::constant_pad_nd(x, tp, value);
  }
  const bool reflect = mode == "reflect";
  at::Tensor y = x;
  for (int64_t axis = 0; axis < rank; ++axis) {
    int64_t b = pads[static_cast<size_t>(axis)], e = pads[static_cast<size_t>(axis + rank)];
    if (b < 0 || e < 0) {  // crop first
      const int64_t start = std::max<int64_t>(-b, 0);
      const int64_t stop = y.size(axis) - std::max<int64_t>(-e, 0);
      y = y.slice(axis, start, stop);
      b = std::max<int64_t>(b, 0);
      e = std::max<int64_t>(e, 0);
    }
    if (b == 0 && e == 0) continue;
    const int64_t n = y.size(axis);
    if (n == 0) throw std::invalid_argument("cannot " + mode + "-pad an empty axis");
    if (reflect && (b >= n || e >= n) && n > 1) {
      throw std::invalid_argument("reflect pads must be smaller than the axis they pad");
    }
    y = at::index_select(y, axis, source_indices(n, b, e, reflect));
  }
  return y;
}

}  // namespace

void register_pad(Registry& r) {
  r.add("Pad", [](const NodeContext& ctx) -> Kernel {
    const std::string mode = ctx.node.attributes.get_string("mode", "constant");
    if (mode != "constant" && mode != "reflect" && mode != "edge") {
      ctx.fail("unknown Pad mode '" + mode + "' (constant, reflect or edge)");
    }
    if (ctx.opset < 11) {
      const auto pads = ctx.node.attributes.get_ints("pads");
      const double value = ctx.node.attributes.get_float("value", 0.0f);
      return [=](const std::vector<at::Tensor>& in, const RunContext&) {
        return std::vector<at::Tensor>{pad(in[0], pads, mode, value)};
      };
    }
    return [=](const std::vector<at::Tensor>& in, const RunContext&) {
      at::Scalar value = 0;
      if (in.size() > 2 && in[2].defined() && in[2].numel() > 0) value = in[2].reshape({-1})[0].item();
      return std::vector<at::Tensor>{pad(in[0], to_int64_vector(in[1]), mode, value)};
    };
  });
}

}  // namespace graft::ops

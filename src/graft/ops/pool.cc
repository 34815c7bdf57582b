// MaxPool (with Indices), AveragePool, GlobalAveragePool, GlobalMaxPool; 1-D to 3-D.
//
// Pads are applied explicitly before pooling (they may be asymmetric, which ATen's pooling
// cannot express). AveragePool divides a window sum by a window count computed the same way
// from a mask that is 1 over the input (and over the pads when count_include_pad), so ceil-mode
// windows and pads are counted exactly as ONNX defines.
#include <ATen/ATen.h>

#include <limits>
#include <tuple>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

struct PoolGeometry {
  std::vector<int64_t> kernel, strides, dilations, pads;
  std::string auto_pad;
  bool ceil_mode = false;

  static PoolGeometry read(const NodeContext& ctx) {
    const auto& a = ctx.node.attributes;
    PoolGeometry g;
    g.kernel = a.get_ints("kernel_shape");
    if (g.kernel.empty() || g.kernel.size() > 3) ctx.fail("kernel_shape must have 1 to 3 values");
    const size_t k = g.kernel.size();
    g.strides = a.get_ints("strides", std::vector<int64_t>(k, 1));
    g.dilations = a.get_ints("dilations", std::vector<int64_t>(k, 1));
    g.pads = a.get_ints("pads", std::vector<int64_t>(2 * k, 0));
    g.auto_pad = a.get_string("auto_pad", "NOTSET");
    g.ceil_mode = a.get_int("ceil_mode", 0) != 0;
    if (g.strides.size() != k || g.dilations.size() != k || g.pads.size() != 2 * k) {
      ctx.fail("strides, dilations and pads must match kernel_shape's length");
    }
    return g;
  }

  // Begin and end pads for this input.
  void pads_for(const at::Tensor& x, std::vector<int64_t>* begin, std::vector<int64_t>* end) const {
    const size_t k = kernel.size();
    begin->assign(k, 0);
    end->assign(k, 0);
    for (size_t i = 0; i < k; ++i) {
      const int64_t size = x.size(static_cast<int64_t>(i) + 2);
      const int64_t extent = (kernel[i] - 1) * dilations[i] + 1;
      if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        std::tie((*begin)[i], (*end)[i]) = same_pads(size, extent, strides[i], auto_pad == "SAME_UPPER");
      } else if (auto_pad != "VALID") {
        (*begin)[i] = pads[i];
        (*end)[i] = pads[i + k];
      }
    }
  }
};

at::Tensor avg_pool(const at::Tensor& x, const PoolGeometry& g) {
  const std::vector<int64_t> zeros(g.kernel.size(), 0);
  switch (g.kernel.size()) {
    case 1: return at::avg_pool1d(x, g.kernel, g.strides, zeros, g.ceil_mode, true);
    case 2: return at::avg_pool2d(x, g.kernel, g.strides, zeros, g.ceil_mode, true);
    default: return at::avg_pool3d(x, g.kernel, g.strides, zeros, g.ceil_mode, true);
  }
}

Kernel make_average_pool(const NodeContext& ctx) {
  const PoolGeometry g = PoolGeometry::read(ctx);
  const bool include_pad = ctx.node.attributes.get_int("count_include_pad", 0) != 0;
  for (int64_t d : g.dilations) {
    if (d != 1) ctx.fail("AveragePool with dilations is not supported");
  }
  return [g, include_pad](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    std::vector<int64_t> begin, end;
    g.pads_for(x, &begin, &end);
    const auto pads = torch_pads(begin, end);
    std::vector<int64_t> mask_shape(static_cast<size_t>(x.dim()), 1);
    for (int64_t i = 2; i < x.dim(); ++i) mask_shape[static_cast<size_t>(i)] = x.size(i);
    at::Tensor mask = at::ones(mask_shape, x.options());
    at::Tensor sum = avg_pool(at::constant_pad_nd(x, pads, 0), g);
    at::Tensor count = avg_pool(at::constant_pad_nd(mask, pads, include_pad ? 1 : 0), g);
    return std::vector<at::Tensor>{sum / count};
  };
}

Kernel make_max_pool(const NodeContext& ctx) {
  const PoolGeometry g = PoolGeometry::read(ctx);
  const bool column_major = ctx.node.attributes.get_int("storage_order", 0) != 0;
  const bool want_indices = ctx.node.outputs.size() > 1 && !ctx.node.outputs[1].empty();
  if (want_indices && g.kernel.size() != 2) ctx.fail("MaxPool Indices are supported for 2-D pooling only");
  return [=](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x0 = in[0];
    // ATen pools floating tensors; small integer types round-trip exactly through float.
    const bool integral = !x0.is_floating_point();
    const at::Tensor x = integral ? x0.to(at::kFloat) : x0;
    std::vector<int64_t> begin, end;
    g.pads_for(x, &begin, &end);
    at::Tensor padded =
        at::constant_pad_nd(x, torch_pads(begin, end), -std::numeric_limits<double>::infinity());
    const std::vector<int64_t> zeros(g.kernel.size(), 0);
    at::Tensor y, indices;
    switch (g.kernel.size()) {
      case 1: y = at::max_pool1d(padded, g.kernel, g.strides, zeros, g.dilations, g.ceil_mode); break;
      case 2:
        std::tie(y, indices) = at::max_pool2d_with_indices(padded, g.kernel, g.strides, zeros,
                                                           g.dilations, g.ceil_mode);
        break;
      default: y = at::max_pool3d(padded, g.kernel, g.strides, zeros, g.dilations, g.ceil_mode);
    }
    if (integral) y = y.to(x0.scalar_type());
    if (!want_indices) return std::vector<at::Tensor>{y};
    // ATen's index is within the padded H×W plane; ONNX's is over the whole unpadded tensor.
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    const int64_t wp = padded.size(3);
    at::Tensor row = at::div(indices, wp, "floor") - begin[0];
    at::Tensor col = at::remainder(indices, wp) - begin[1];
    at::Tensor plane = at::arange(n * c, indices.options()).reshape({n, c, 1, 1});
    at::Tensor flat = column_major ? (plane * w + col) * h + row : (plane * h + row) * w + col;
    return std::vector<at::Tensor>{y, flat};
  };
}

std::vector<int64_t> spatial_dims(const at::Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t i = 2; i < x.dim(); ++i) dims.push_back(i);
  return dims;
}

}  // namespace

void register_pool(Registry& r) {
  r.add("MaxPool", make_max_pool);
  r.add("AveragePool", make_average_pool);
  r.add("GlobalAveragePool", [](const NodeContext&) -> Kernel {
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::mean(in[0], spatial_dims(in[0]), /*keepdim=*/true)};
    };
  });
  r.add("GlobalMaxPool", [](const NodeContext&) -> Kernel {
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::amax(in[0], spatial_dims(in[0]), /*keepdim=*/true)};
    };
  });
}

}  // namespace graft::ops

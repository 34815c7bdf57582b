// Conv and ConvTranspose, 1-D to 3-D, with groups, dilations, explicit (possibly asymmetric)
// pads and auto_pad SAME_UPPER / SAME_LOWER / VALID.
#include <ATen/ATen.h>

#include <tuple>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

struct Geometry {
  std::vector<int64_t> kernel, strides, dilations, pads;  // pads: begins then ends
  std::string auto_pad;
  int64_t group = 1;

  static Geometry read(const NodeContext& ctx) {
    const auto& a = ctx.node.attributes;
    Geometry g;
    g.kernel = a.get_ints("kernel_shape");
    g.strides = a.get_ints("strides");
    g.dilations = a.get_ints("dilations");
    g.pads = a.get_ints("pads");
    g.auto_pad = a.get_string("auto_pad", "NOTSET");
    g.group = a.get_int("group", 1);
    if (g.auto_pad != "NOTSET" && g.auto_pad != "SAME_UPPER" && g.auto_pad != "SAME_LOWER" &&
        g.auto_pad != "VALID") {
      ctx.fail("unknown auto_pad '" + g.auto_pad + "'");
    }
    if (g.group < 1) ctx.fail("group must be positive");
    return g;
  }

  // Fills defaults for `k` spatial axes and checks lengths.
  void complete(size_t k, const char* where) const {
    auto check = [&](const std::vector<int64_t>& v, size_t want, const char* name) {
      if (!v.empty() && v.size() != want) {
        throw std::invalid_argument(std::string(where) + ": " + name + " has " +
                                    std::to_string(v.size()) + " values, expected " +
                                    std::to_string(want));
      }
    };
    check(strides, k, "strides");
    check(dilations, k, "dilations");
    check(pads, 2 * k, "pads");
  }
  int64_t stride(size_t i) const { return strides.empty() ? 1 : strides[i]; }
  int64_t dilation(size_t i) const { return dilations.empty() ? 1 : dilations[i]; }
};

at::Tensor bias_view(const at::Tensor& b, int64_t rank) {
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[1] = -1;
  return b.reshape(shape);
}

Kernel make_conv(const NodeContext& ctx) {
  const Geometry g = Geometry::read(ctx);
  const std::string where = ctx.where();
  return [g, where](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];
    const size_t k = static_cast<size_t>(w.dim() - 2);
    g.complete(k, where.c_str());
    std::vector<int64_t> begin(k), end(k), stride(k), dilation(k);
    for (size_t i = 0; i < k; ++i) {
      stride[i] = g.stride(i);
      dilation[i] = g.dilation(i);
      const int64_t size = x.size(static_cast<int64_t>(i) + 2);
      const int64_t extent = (w.size(static_cast<int64_t>(i) + 2) - 1) * dilation[i] + 1;
      if (g.auto_pad == "SAME_UPPER" || g.auto_pad == "SAME_LOWER") {
        std::tie(begin[i], end[i]) = same_pads(size, extent, stride[i], g.auto_pad == "SAME_UPPER");
      } else if (g.auto_pad == "VALID" || g.pads.empty()) {
        begin[i] = end[i] = 0;
      } else {
        begin[i] = g.pads[i];
        end[i] = g.pads[i + k];
      }
    }
    at::Tensor input = x;
    std::vector<int64_t> padding = begin;
    if (begin != end) {
      input = at::constant_pad_nd(x, torch_pads(begin, end), 0);
      padding.assign(k, 0);
    }
    const at::Tensor bias = in.size() > 2 && in[2].defined() ? in[2] : at::Tensor();
    std::vector<int64_t> no_output_padding(k, 0);
    return std::vector<at::Tensor>{at::convolution(input, w, bias, stride, padding, dilation,
                                                   /*transposed=*/false, no_output_padding,
                                                   g.group)};
  };
}

Kernel make_conv_transpose(const NodeContext& ctx) {
  const Geometry g = Geometry::read(ctx);
  const auto output_padding_attr = ctx.node.attributes.get_ints("output_padding");
  const auto output_shape_attr = ctx.node.attributes.get_ints("output_shape");
  const std::string where = ctx.where();
  return [=](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const at::Tensor& w = in[1];  // (C_in, C_out / group, k...)
    const size_t k = static_cast<size_t>(w.dim() - 2);
    g.complete(k, where.c_str());
    std::vector<int64_t> stride(k), dilation(k), begin(k), end(k), extra(k);
    std::vector<int64_t> out_shape = output_shape_attr;
    if (out_shape.size() > k) out_shape.erase(out_shape.begin(), out_shape.end() - k);
    for (size_t i = 0; i < k; ++i) {
      stride[i] = g.stride(i);
      dilation[i] = g.dilation(i);
      extra[i] = output_padding_attr.empty() ? 0 : output_padding_attr[i];
      const int64_t size = x.size(static_cast<int64_t>(i) + 2);
      const int64_t full = (size - 1) * stride[i] + (w.size(static_cast<int64_t>(i) + 2) - 1) * dilation[i] + 1 + extra[i];
      const bool same = g.auto_pad == "SAME_UPPER" || g.auto_pad == "SAME_LOWER";
      if (!out_shape.empty() || same) {
        const int64_t target = !out_shape.empty() ? out_shape[i] : size * stride[i];
        // Split as ONNX's reference does, with floor division: a negative total (a larger
        // output than the convolution covers) extends the end.
        const int64_t total = full - target;
        const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
        if (g.auto_pad == "SAME_UPPER") {
          begin[i] = half;
          end[i] = total - half;
        } else {
          begin[i] = total - half;
          end[i] = half;
        }
      } else if (g.auto_pad == "VALID" || g.pads.empty()) {
        begin[i] = end[i] = 0;
      } else {
        begin[i] = g.pads[i];
        end[i] = g.pads[i + k];
      }
    }
    std::vector<int64_t> zeros(k, 0);
    at::Tensor y = at::convolution(x, w, at::Tensor(), stride, zeros, dilation,
                                   /*transposed=*/true, zeros, g.group);
    // Output padding adds rows no input reaches; pads crop (or, negative, extend) the result.
    std::vector<int64_t> crop_begin(k), crop_end(k);
    bool any = false;
    for (size_t i = 0; i < k; ++i) {
      crop_begin[i] = -begin[i];
      crop_end[i] = extra[i] - end[i];
      any = any || crop_begin[i] != 0 || crop_end[i] != 0;
    }
    if (any) y = at::constant_pad_nd(y, torch_pads(crop_begin, crop_end), 0);
    if (in.size() > 2 && in[2].defined()) y = y + bias_view(in[2], y.dim());
    return std::vector<at::Tensor>{y};
  };
}

// graft.FusedConv (see graft/exec/passes/passes.h): Y = activation(Conv(X, W, B) + Z), the sum
// and the activation applied in place on the convolution's fresh result.
Kernel make_fused_conv(const NodeContext& ctx) {
  const Kernel conv = make_conv(ctx);
  const std::string act = ctx.node.attributes.get_string("activation", "");
  const std::vector<float> p = ctx.node.attributes.get_floats("activation_params");
  check_fused_activation(ctx, act, p);
  return [conv, act, p](const std::vector<at::Tensor>& in, const RunContext& run) {
    const std::vector<at::Tensor> conv_in(in.begin(), in.begin() + std::min<size_t>(3, in.size()));
    at::Tensor y = conv(conv_in, run)[0];
    if (in.size() > 3 && in[3].defined()) y.add_(in[3]);
    apply_fused_activation(y, act, p);
    return std::vector<at::Tensor>{y};
  };
}

}  // namespace

void register_conv(Registry& r) {
  r.add("graft.FusedConv", make_fused_conv);
  r.add("Conv", make_conv);
  r.add("ConvTranspose", make_conv_transpose);
}

}  // namespace graft::ops

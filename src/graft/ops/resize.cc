// Resize (opsets 10, 11, 13) and Upsample (7, 9): nearest and linear modes, every coordinate
// transformation mode and nearest rounding mode of those opsets. Interpolation is separable:
// one gather (nearest) or two gathers and a lerp (linear) per resized axis.
#include <ATen/ATen.h>

#include <cmath>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

struct ResizeSpec {
  std::string mode = "nearest";
  std::string transform = "half_pixel";
  std::string nearest = "round_prefer_floor";
  double extrapolation = 0.0;
};

// Source coordinate of every output position along one axis.
// `resized` is the output length as ONNX's formulas use it: the requested size, or in * scale
// (not floored) when scales were given.
at::Tensor source_coords(const ResizeSpec& s, int64_t in, int64_t out, double resized,
                         double scale, double roi_start, double roi_end) {
  at::Tensor x = at::arange(out, at::kDouble);
  const std::string& t = s.transform;
  if (t == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return out > 1 ? (x + 0.5) / scale - 0.5 : at::zeros_like(x);
  if (t == "align_corners") {
    return out == 1 ? at::zeros_like(x) : x * (static_cast<double>(in - 1) / (resized - 1));
  }
  if (t == "asymmetric") return x / scale;
  if (t == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  if (t == "tf_crop_and_resize") {
    if (out == 1) return at::full_like(x, 0.5 * (roi_start + roi_end) * (in - 1));
    return roi_start * (in - 1) + x * ((roi_end - roi_start) * (in - 1) / (resized - 1));
  }
  throw std::invalid_argument("unknown coordinate_transformation_mode '" + t + "'");
}

at::Tensor round_nearest(const at::Tensor& c, const std::string& mode) {
  if (mode == "round_prefer_floor") return at::ceil(c - 0.5);
  if (mode == "round_prefer_ceil") return at::floor(c + 0.5);
  if (mode == "floor") return at::floor(c);
  if (mode == "ceil") return at::ceil(c);
  throw std::invalid_argument("unknown nearest_mode '" + mode + "'");
}

at::Tensor resize(const at::Tensor& x, const ResizeSpec& s, const std::vector<int64_t>& out_sizes,
                  const std::vector<double>& scales, const std::vector<double>& roi,
                  bool sizes_given) {
  at::Tensor y = x.is_floating_point() ? x : x.to(at::kFloat);
  const int64_t rank = x.dim();
  for (int64_t axis = 0; axis < rank; ++axis) {
    const int64_t in = x.size(axis), out = out_sizes[static_cast<size_t>(axis)];
    const double scale = scales[static_cast<size_t>(axis)];
    if (in == out && scale == 1.0 && s.transform != "tf_crop_and_resize") continue;
    const double r0 = roi.empty() ? 0.0 : roi[static_cast<size_t>(axis)];
    const double r1 = roi.empty() ? 1.0 : roi[static_cast<size_t>(axis + rank)];
    const double resized = sizes_given ? static_cast<double>(out) : in * scale;
    at::Tensor c = source_coords(s, in, out, resized, scale, r0, r1);
    at::Tensor outside;
    if (s.transform == "tf_crop_and_resize") outside = (c < 0) | (c > in - 1);
    std::vector<int64_t> wshape(static_cast<size_t>(rank), 1);
    wshape[static_cast<size_t>(axis)] = out;
    if (s.mode == "nearest") {
      at::Tensor idx = at::clamp(round_nearest(c, s.nearest), 0, in - 1).to(at::kLong);
      y = at::index_select(y, axis, idx);
    } else {
      at::Tensor cc = at::clamp(c, 0, in - 1);
      at::Tensor x0 = at::floor(cc);
      at::Tensor w = (cc - x0).to(y.scalar_type()).reshape(wshape);
      at::Tensor i0 = x0.to(at::kLong);
      at::Tensor i1 = at::clamp(i0 + 1, 0, in - 1);
      at::Tensor a = at::index_select(y, axis, i0), b = at::index_select(y, axis, i1);
      y = a + (b - a) * w;
    }
    if (outside.defined()) y = y.masked_fill(outside.reshape(wshape), s.extrapolation);
  }
  return x.is_floating_point() ? y : y.to(x.scalar_type());
}

std::vector<double> to_doubles(const at::Tensor& t) {
  at::Tensor c = t.to(at::kDouble).contiguous().reshape({-1});
  return {c.data_ptr<double>(), c.data_ptr<double>() + c.numel()};
}

Kernel make_resize(const NodeContext& ctx, bool upsample) {
  const auto& a = ctx.node.attributes;
  ResizeSpec s;
  s.mode = a.get_string("mode", "nearest");
  if (s.mode == "bilinear" || s.mode == "trilinear") s.mode = "linear";  // Upsample-7 names
  if (s.mode != "nearest" && s.mode != "linear") {
    ctx.fail("mode '" + s.mode + "' is not supported (nearest or linear)");
  }
  const int64_t opset = ctx.opset;
  if (upsample || opset < 11) {
    // Upsample and Resize-10: output = floor(input * scale), asymmetric coordinates, nearest
    // rounds down.
    s.transform = "asymmetric";
    s.nearest = "floor";
  } else {
    s.transform = a.get_string("coordinate_transformation_mode", "half_pixel");
    s.nearest = a.get_string("nearest_mode", "round_prefer_floor");
    s.extrapolation = a.get_float("extrapolation_value", 0.0f);
  }
  const auto attr_scales = a.get_floats("scales");
  return [=](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    std::vector<double> scales, roi;
    std::vector<int64_t> sizes;
    if (upsample && opset < 9) {
      scales.assign(attr_scales.begin(), attr_scales.end());
    } else if (upsample || opset < 11) {
      scales = to_doubles(in[1]);
    } else {
      if (in.size() > 1 && in[1].defined()) roi = to_doubles(in[1]);
      if (in.size() > 2 && in[2].defined() && in[2].numel() > 0) scales = to_doubles(in[2]);
      if (in.size() > 3 && in[3].defined() && in[3].numel() > 0) sizes = to_int64_vector(in[3]);
    }
    const size_t rank = static_cast<size_t>(x.dim());
    const bool sizes_given = !sizes.empty();
    if (sizes_given) {
      if (sizes.size() != rank) throw std::invalid_argument("Resize: sizes must have one value per axis");
      scales.resize(rank);
      for (size_t i = 0; i < rank; ++i) scales[i] = static_cast<double>(sizes[i]) / x.size(static_cast<int64_t>(i));
    } else {
      if (scales.size() != rank) throw std::invalid_argument("Resize: scales must have one value per axis");
      for (size_t i = 0; i < rank; ++i) {
        if (!(scales[i] > 0)) throw std::invalid_argument("Resize: scales must be positive");
        sizes.push_back(static_cast<int64_t>(std::floor(x.size(static_cast<int64_t>(i)) * scales[i])));
      }
    }
    if (!roi.empty() && roi.size() != 2 * rank) roi.clear();
    return std::vector<at::Tensor>{resize(x, s, sizes, scales, roi, sizes_given)};
  };
}

}  // namespace

void register_resize(Registry& r) {
  r.add("Resize", [](const NodeContext& ctx) { return make_resize(ctx, false); });
  r.add("Upsample", [](const NodeContext& ctx) { return make_resize(ctx, true); });
}

}  // namespace graft::ops

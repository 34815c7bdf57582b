// Pooling (max, average, global average, spatial ReduceMean) and linear Resize as oneDNN resampling.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

// ReduceMean over the two spatial axes of a 4-D tensor: global average pooling. Its keepdims,
// or nullopt. (Axes as an attribute, opsets up to 17, as the reference kernel reads them.)
std::optional<bool> Program::Impl::spatial_mean(const ir::Node& n) const {
  if (n.inputs.size() != 1) return std::nullopt;
  std::vector<int64_t> axes = n.attributes.get_ints("axes", {});
  for (auto& axis : axes) axis = axis < 0 ? axis + 4 : axis;
  std::sort(axes.begin(), axes.end());
  if (axes != std::vector<int64_t>{2, 3}) return std::nullopt;
  return n.attributes.get_int("keepdims", 1) != 0;
}

bool Program::Impl::pool(size_t index) {
  const ir::Node& n = graph.nodes[index];
  std::optional<bool> keepdims = true;
  if (n.op_type == "ReduceMean") keepdims = spatial_mean(n);
  const bool global = n.op_type == "GlobalAveragePool" || n.op_type == "ReduceMean";
  if (!keepdims || !is_f32(n.inputs[0], 4)) return false;
  for (size_t k = 1; k < n.outputs.size(); ++k) {
    if (!n.outputs[k].empty() && used(n.outputs[k])) return false;  // Indices wanted
  }
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  std::vector<int64_t> y{x[0], x[1], 1, 1};
  std::vector<int64_t> kernel{x[2], x[3]}, strides{1, 1};
  memory::dims pad_l{0, 0}, pad_r{0, 0};
  dnnl::algorithm alg = dnnl::algorithm::pooling_avg_exclude_padding;
  if (!global) {
    kernel = n.attributes.get_ints("kernel_shape", {});
    strides = ints_or(n, "strides", {1, 1});
    const auto dilations = ints_or(n, "dilations", {1, 1});
    if (kernel.size() != 2 || strides.size() != 2 || dilations != std::vector<int64_t>{1, 1} ||
        !window_pads(n, x, kernel, strides, dilations, &pad_l, &pad_r)) {
      return false;
    }
    const bool include = n.attributes.get_int("count_include_pad", 0) != 0;
    alg = n.op_type == "MaxPool" ? dnnl::algorithm::pooling_max
          : include              ? dnnl::algorithm::pooling_avg_include_padding
                                 : dnnl::algorithm::pooling_avg_exclude_padding;
    // ceil_mode: the last window may hang over the end; oneDNN sees that as more end padding,
    // which max pooling and averaging without padding ignore.
    // Output sizes as the reference kernel (ATen's pooling of the explicitly padded input)
    // computes them.
    const bool ceil = n.attributes.get_int("ceil_mode", 0) != 0;
    for (size_t i = 0; i < 2; ++i) {
      const int64_t padded = x[i + 2] + pad_l[i] + pad_r[i];
      if (strides[i] < 1 || padded < kernel[i]) return false;
      int64_t out = (padded - kernel[i] + (ceil ? strides[i] - 1 : 0)) / strides[i] + 1;
      if (ceil && (out - 1) * strides[i] >= padded) --out;
      y[i + 2] = out;
    }
    for (size_t i = 0; i < 2; ++i) {
      const int64_t end = (y[i + 2] - 1) * strides[i] + kernel[i] - x[i + 2] - pad_l[i];
      if (end > pad_r[i]) {
        if (alg == dnnl::algorithm::pooling_avg_include_padding) return false;
        pad_r[i] = end;
      }
    }
  }
  const memory::desc src_md = layout(n.inputs[0]);
  std::optional<dnnl::pooling_forward::primitive_desc> pd;
  try {
    const auto make_pd = [&](Tag dst_tag) {
      dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, src_md,
                                    memory::desc(to_dims(y), DataType::f32, dst_tag), to_dims(strides),
                                    to_dims(kernel), pad_l, pad_r);
      pd.emplace(d, scratchpad_attr(), cpu_engine());
    };
    make_pd(Tag::any);
    // Without keepdims the [N, C, 1, 1] result is read as [N, C]: its layout must be plain
    // nchw or nhwc (the same bytes when H = W = 1).
    const memory::desc nhwc(to_dims(y), DataType::f32, Tag::nhwc);
    if (!*keepdims && pd->dst_desc() != plain_desc(y) && pd->dst_desc() != nhwc) make_pd(Tag::nhwc);
  } catch (const dnnl::error&) {
    return false;
  }
  Step s;
  s.prim = dnnl::pooling_forward(*pd);
  bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
  const int dst = emit_output(s, n.outputs[0], pd->dst_desc());
  if (!*keepdims) define(n.outputs[0], plain_desc({y[0], y[1]}), dst);
  return true;
}

// Resize, linear, with half-pixel coordinates (oneDNN's resampling: source coordinate
// (o + 0.5) * in / out - 0.5, clamped at the edges), of the two spatial axes of a 4-D tensor
// whose output size is known when compiling.
bool Program::Impl::resize(size_t index) {
  const ir::Node& n = graph.nodes[index];
  const auto& a = n.attributes;
  if (graph.opset() < 11 || !is_f32(n.inputs[0], 4) || a.get_string("mode", "nearest") != "linear" ||
      a.get_int("antialias", 0) != 0 || a.has("axes") ||
      a.get_string("keep_aspect_ratio_policy", "stretch") != "stretch") {
    return false;
  }
  const std::string transform = a.get_string("coordinate_transformation_mode", "half_pixel");
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  std::vector<int64_t> y;
  const at::Tensor* sizes = n.inputs.size() > 3 && !n.inputs[3].empty() ? initializer(n.inputs[3]) : nullptr;
  const at::Tensor* scales = n.inputs.size() > 2 && !n.inputs[2].empty() ? initializer(n.inputs[2]) : nullptr;
  if (sizes != nullptr && sizes->numel() == 4 && sizes->scalar_type() == at::kLong) {
    const at::Tensor c = sizes->contiguous();
    y.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + 4);
  } else if (sizes == nullptr && scales != nullptr && scales->numel() == 4) {
    // Coordinates follow the given scales: only exact ones (out = in * scale) are out / in.
    const at::Tensor c = scales->to(at::kDouble).contiguous();
    for (size_t i = 0; i < 4; ++i) {
      const double exact = static_cast<double>(x[i]) * c.data_ptr<double>()[i];
      if (exact != std::floor(exact)) return false;
      y.push_back(static_cast<int64_t>(exact));
    }
  } else {
    return false;
  }
  if (y[0] != x[0] || y[1] != x[1] || y[2] < 1 || y[3] < 1) return false;
  // pytorch_half_pixel differs from half_pixel only for an output of size 1.
  if (transform != "half_pixel" && !(transform == "pytorch_half_pixel" && y[2] > 1 && y[3] > 1)) return false;
  return unary<dnnl::resampling_forward>(n, [&] {
    dnnl::resampling_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::resampling_linear,
                                     layout(n.inputs[0]),
                                     memory::desc(to_dims(y), DataType::f32, Tag::any));
    return dnnl::resampling_forward::primitive_desc(d, scratchpad_attr(), cpu_engine());
  });
}

}  // namespace graft::exec::onednn

// Normalisation: BatchNormalization that no convolution absorbed (inference statistics, as a
// per-channel multiply-add; a Relu read only by it fused), and LayerNormalization over the last
// axis.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"
#include "graft/exec/onednn/native.h"

namespace graft::exec::onednn {
namespace {

// A float constant of `count` elements, as a contiguous [count] tensor; undefined otherwise.
at::Tensor vector_of(const at::Tensor* t, int64_t count) {
  if (t == nullptr || t->scalar_type() != at::kFloat || t->numel() != count) return {};
  return t->contiguous().reshape({count});
}

// The stride between pixels of `md` when it is an nhwc layout whose pixels may be wider than its
// channels (a channel prefix of a wider buffer, starting at its first channel); 0 otherwise.
int64_t pixel_stride(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  if (d.ndims != 4 || d.format_kind != dnnl_blocked || d.format_desc.blocking.inner_nblks != 0 ||
      d.offset0 != 0) {
    return 0;
  }
  const auto* st = d.format_desc.blocking.strides;
  const auto* dims = d.dims;
  const bool nhwc = st[1] == 1 && st[3] >= dims[1] && st[2] == dims[3] * st[3] && st[0] == dims[2] * st[2];
  return nhwc ? st[3] : 0;
}

}  // namespace

// BatchNormalization (+Relu) of a channel-prefix view (ConcatGroup): graft's own loop reads
// the strided pixels and writes a dense nhwc tensor, where oneDNN's binary kernel would take its
// reference implementation.
bool Program::Impl::strided_scale_shift(size_t index, const at::Tensor& scale, const at::Tensor& shift,
                                        const std::optional<std::pair<std::string, size_t>>& relu) {
  const ir::Node& n = graph.nodes[index];
  const Value& v = values.at(n.inputs[0]);
  const int64_t stride = pixel_stride(v.md);
  if (!v.in_arena || stride <= v.info.sizes[1]) return false;  // dense: oneDNN's binary step
  const std::vector<int64_t>& x = v.info.sizes;
  const int64_t channels = x[1], pixels = x[0] * x[2] * x[3];
  keep_alive.push_back(scale.contiguous());
  const float* s_data = keep_alive.back().data_ptr<float>();
  keep_alive.push_back(shift.contiguous());
  const float* t_data = keep_alive.back().data_ptr<float>();
  const bool with_relu = relu.has_value();
  Step s;
  s.kernel = with_relu ? "graft:scale_shift_relu" : "graft:scale_shift";
  s.args[DNNL_ARG_SRC] = memory(v.md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(s.args[DNNL_ARG_SRC], v.buffer);
  s.reads.push_back(v.buffer);
  s.native = [=](const Step& step) {
    const auto* src = static_cast<const float*>(step.args.at(DNNL_ARG_SRC).get_data_handle());
    auto* dst = static_cast<float*>(step.args.at(DNNL_ARG_DST).get_data_handle());
    scale_shift(src, stride, dst, pixels, channels, s_data, t_data, with_relu);
  };
  if (relu) {
    absorbed.insert(relu->second);
    s.name = (n.name.empty() ? n.outputs[0] : n.name) + "+Relu";
  }
  emit_output(s, relu ? relu->first : n.outputs[0], memory::desc(to_dims(x), DataType::f32, Tag::nhwc));
  return true;
}

bool Program::Impl::batch_norm(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() != 5 || !is_f32(n.inputs[0], 4) || initializer(n.inputs[0]) != nullptr) return false;
  for (size_t k = 1; k < n.outputs.size(); ++k) {
    if (!n.outputs[k].empty() && used(n.outputs[k])) return false;  // training outputs
  }
  if (n.attributes.get_int("training_mode", 0) != 0) return false;
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  const int64_t c = x[1];
  at::Tensor stats[4];
  for (size_t k = 0; k < 4; ++k) {
    stats[k] = vector_of(initializer(n.inputs[k + 1]), c);
    if (!stats[k].defined()) return false;
  }
  const float eps = n.attributes.get_float("epsilon", 1e-5f);
  dnnl::post_ops none;
  std::optional<std::pair<std::string, size_t>> relu;
  if (auto next = activation_after(n.outputs[0], none); next && graph.nodes[next->second].op_type == "Relu" &&
                                                         graph.nodes[next->second].domain.empty()) {
    relu = next;
  }
  // y = x * s + t (s = gamma / sqrt(var + eps), t = beta - mean * s) as a binary multiply
  // with the shift and the Relu as post-ops: oneDNN's batch normalisation kernel in nhwc ran
  // 10-20x slower than this on DenseNet's 56x56 pre-activations.
  const at::Tensor scale = stats[0].to(at::kDouble) / (stats[3].to(at::kDouble) + eps).sqrt();
  const at::Tensor shift = stats[1].to(at::kDouble) - stats[2].to(at::kDouble) * scale;
  if (values.at(n.inputs[0]).view &&
      strided_scale_shift(index, scale.to(at::kFloat), shift.to(at::kFloat), relu)) {
    return true;
  }
  const memory::desc md = layout(n.inputs[0]);
  const std::vector<int64_t> per_channel{1, c, 1, 1};
  const memory::desc c_md = broadcast_desc(md, x, per_channel);
  dnnl::post_ops po;
  po.append_binary(dnnl::algorithm::binary_add, c_md);
  if (relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  std::optional<dnnl::binary::primitive_desc> pd;
  try {
    dnnl::primitive_attr attr = scratchpad_attr();
    attr.set_post_ops(po);
    dnnl::binary::desc d(dnnl::algorithm::binary_mul, md, c_md, md);
    pd.emplace(d, attr, cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (relu) absorbed.insert(relu->second);
  Step s;
  s.prim = dnnl::binary(*pd);
  bind(s, DNNL_ARG_SRC_0, n.inputs[0], md);
  const memory::desc plain = plain_desc(per_channel);
  const std::string base = n.name.empty() ? n.outputs[0] : n.name;
  s.args[DNNL_ARG_SRC_1] = constant_memory(base + "/scale", scale.to(at::kFloat), plain, c_md);
  s.args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] =
      constant_memory(base + "/shift", shift.to(at::kFloat), plain, c_md);
  if (relu) s.name = base + "+Relu";
  emit_output(s, relu ? relu->first : n.outputs[0], pd->dst_desc());
  return true;
}

bool Program::Impl::layer_norm(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() < 2 || !is_f32(n.inputs[0]) || initializer(n.inputs[0]) != nullptr) return false;
  for (size_t k = 1; k < n.outputs.size(); ++k) {
    if (!n.outputs[k].empty() && used(n.outputs[k])) return false;  // Mean, InvStdDev
  }
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  const auto rank = static_cast<int64_t>(x.size());
  const int64_t axis = n.attributes.get_int("axis", -1);
  if (axis != -1 && axis != rank - 1) return false;
  const int64_t c = x.back();
  const at::Tensor scale = vector_of(initializer(n.inputs[1]), c);
  at::Tensor shift = n.inputs.size() > 2 && !n.inputs[2].empty() ? vector_of(initializer(n.inputs[2]), c)
                                                                  : at::zeros({c}, at::kFloat);
  if (!scale.defined() || !shift.defined()) return false;
  const float eps = n.attributes.get_float("epsilon", 1e-5f);
  const memory::desc md = plain_desc(x);
  std::optional<dnnl::layer_normalization_forward::primitive_desc> pd;
  try {
    dnnl::layer_normalization_forward::desc d(
        dnnl::prop_kind::forward_inference, md, eps,
        dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
    pd.emplace(d, scratchpad_attr(), cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  Step s;
  s.prim = dnnl::layer_normalization_forward(*pd);
  bind(s, DNNL_ARG_SRC, n.inputs[0], md);
  const memory::desc v_md({c}, DataType::f32, Tag::x);
  s.args[DNNL_ARG_SCALE] = constant_memory("", scale, v_md, v_md);
  s.args[DNNL_ARG_SHIFT] = constant_memory("", shift, v_md, v_md);
  emit_output(s, n.outputs[0], pd->dst_desc());
  return true;
}

}  // namespace graft::exec::onednn

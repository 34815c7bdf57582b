// Nodes that only move bytes: Flatten and Reshape as aliases, Transpose as a change of layout
// (no step: the permuted view of the same bytes; its readers reorder if they need another),
// constant Pad.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

// Flatten, and Reshape to a constant shape, of a float tensor in the arena: its plain bytes
// under another shape (no step; a copy only if the value is in a blocked layout).
bool Program::Impl::alias(size_t index) {
  const ir::Node& n = graph.nodes[index];
  auto it = values.find(n.inputs[0]);
  if (it == values.end() || !it->second.in_arena || it->second.info.dtype != at::kFloat) return false;
  const std::vector<int64_t> x = it->second.info.sizes;
  const int64_t count = std::accumulate(x.begin(), x.end(), int64_t{1}, std::multiplies<>());
  std::vector<int64_t> y;
  if (n.op_type == "Flatten") {
    int64_t axis = n.attributes.get_int("axis", 1);
    if (axis < 0) axis += static_cast<int64_t>(x.size());
    if (axis < 0 || axis > static_cast<int64_t>(x.size())) return false;
    const int64_t rows = std::accumulate(x.begin(), x.begin() + axis, int64_t{1}, std::multiplies<>());
    y = {rows, count / std::max<int64_t>(rows, 1)};
  } else {
    const at::Tensor* shape = n.inputs.size() > 1 ? initializer(n.inputs[1]) : nullptr;
    if (shape == nullptr || shape->scalar_type() != at::kLong || shape->dim() != 1) return false;
    const bool allow_zero = graph.opset() >= 14 && n.attributes.get_int("allowzero", 0) != 0;
    const at::Tensor c = shape->contiguous();
    y.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < y.size(); ++i) {
      if (y[i] == 0 && !allow_zero) {
        if (i >= x.size()) return false;
        y[i] = x[i];
      }
      if (y[i] == -1) {
        if (infer >= 0) return false;
        infer = static_cast<int64_t>(i);
      } else if (y[i] < 0) {
        return false;
      } else {
        known *= y[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || count % known != 0) return false;
      y[static_cast<size_t>(infer)] = count / known;
    }
  }
  if (y.empty() || y.size() > 5 ||
      std::accumulate(y.begin(), y.end(), int64_t{1}, std::multiplies<>()) != count) {
    return false;  // the reference kernel reports it
  }
  define(n.outputs[0], plain_desc(y), plain_buffer(n.inputs[0]));
  return true;
}

// Constant Pad of the spatial axes of a 4-D tensor (pads and value known when compiling): the
// output buffer is filled with the value, then the input copied inside it.
bool Program::Impl::pad(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (!is_f32(n.inputs[0], 4) || n.attributes.get_string("mode", "constant") != "constant") return false;
  std::vector<int64_t> pads;
  float value = 0;
  if (graph.opset() < 11) {
    pads = n.attributes.get_ints("pads", {});
    value = n.attributes.get_float("value", 0.f);
  } else {
    const at::Tensor* p = n.inputs.size() > 1 ? initializer(n.inputs[1]) : nullptr;
    if (p == nullptr || p->scalar_type() != at::kLong) return false;
    const at::Tensor c = p->contiguous();
    pads.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
      const at::Tensor* v = initializer(n.inputs[2]);
      if (v == nullptr || v->numel() != 1) return false;
      value = v->to(at::kFloat).reshape({-1})[0].item<float>();
    }
  }
  if (pads.size() != 8 || pads[0] != 0 || pads[1] != 0 || pads[4] != 0 || pads[5] != 0) return false;
  for (int64_t p : pads) {
    if (p < 0) return false;
  }
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  const std::vector<int64_t> y{x[0], x[1], x[2] + pads[2] + pads[6], x[3] + pads[3] + pads[7]};
  // Plain stays plain; anything else is padded in nhwc.
  const Tag tag = values.at(n.inputs[0]).md == plain_desc(x) ? Tag::nchw : Tag::nhwc;
  const memory::desc src_md(to_dims(x), DataType::f32, tag), dst_md(to_dims(y), DataType::f32, tag);
  const memory::desc inside = dst_md.submemory_desc(to_dims(x), {0, 0, pads[2], pads[3]});
  Step s;
  try {
    s.prim = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), src_md, cpu_engine(), inside,
                                                         scratchpad_attr()));
  } catch (const dnnl::error&) {
    return false;
  }
  bind(s, DNNL_ARG_FROM, n.inputs[0], src_md);
  s.fill_arg = DNNL_ARG_TO;
  s.fill_bytes = dst_md.get_size();
  s.fill_value = value;
  const int dst = new_buffer(dst_md);
  s.args[DNNL_ARG_TO] = memory(inside, cpu_engine(), DNNL_MEMORY_NONE);
  attach(s.args[DNNL_ARG_TO], dst);
  s.writes.push_back(dst);
  push(std::move(s));
  define(n.outputs[0], dst_md, dst);
  return true;
}

bool Program::Impl::transpose(size_t index) {
  const ir::Node& n = graph.nodes[index];
  auto it = values.find(n.inputs[0]);
  if (it == values.end() || !it->second.in_arena || it->second.info.dtype != at::kFloat) return false;
  const std::vector<int64_t> x = it->second.info.sizes;
  std::vector<int64_t> perm = n.attributes.get_ints("perm", {});
  if (perm.empty()) {
    for (size_t i = x.size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  }
  if (perm.size() != x.size()) return false;
  // oneDNN's permutation says where each input axis goes; ONNX's perm, where each output axis
  // comes from.
  std::vector<int> where(perm.size(), -1);
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] < 0 || perm[i] >= static_cast<int64_t>(perm.size()) || where[static_cast<size_t>(perm[i])] >= 0) {
      return false;
    }
    where[static_cast<size_t>(perm[i])] = static_cast<int>(i);
  }
  const memory::desc md = it->second.md.permute_axes(where, /*allow_empty=*/true);
  if (md.is_zero()) return false;
  define(n.outputs[0], md, it->second.buffer);
  return true;
}

}  // namespace graft::exec::onednn

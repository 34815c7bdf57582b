// Nodes that only move bytes: Flatten and Reshape as aliases, Transpose as a change of layout
// (no step: the permuted view of the same bytes; its readers reorder if they need another),
// constant Pad.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"
#include "graft/ops/kernel.h"

namespace graft::exec::onednn {

// Flatten, and Reshape to a constant shape, of a float tensor in the arena: its plain bytes
// under another shape (no step; a copy only if the value is in a blocked layout).
std::optional<std::vector<int64_t>> Program::Impl::reshaped(const ir::Node& n, const std::vector<int64_t>& x) const {
  const int64_t count = std::accumulate(x.begin(), x.end(), int64_t{1}, std::multiplies<>());
  std::vector<int64_t> y;
  if (n.op_type == "Flatten") {
    int64_t axis = n.attributes.get_int("axis", 1);
    if (axis < 0) axis += static_cast<int64_t>(x.size());
    if (axis < 0 || axis > static_cast<int64_t>(x.size())) return std::nullopt;
    const int64_t rows = std::accumulate(x.begin(), x.begin() + axis, int64_t{1}, std::multiplies<>());
    y = {rows, count / std::max<int64_t>(rows, 1)};
  } else if (n.op_type == "Reshape") {
    const at::Tensor* shape = n.inputs.size() > 1 ? initializer(n.inputs[1]) : nullptr;
    if (shape == nullptr || shape->scalar_type() != at::kLong || shape->dim() != 1) return std::nullopt;
    const bool allow_zero = graph.opset() >= 14 && n.attributes.get_int("allowzero", 0) != 0;
    const at::Tensor c = shape->contiguous();
    y.assign(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
    int64_t known = 1, infer = -1;
    for (size_t i = 0; i < y.size(); ++i) {
      if (y[i] == 0 && !allow_zero) {
        if (i >= x.size()) return std::nullopt;
        y[i] = x[i];
      }
      if (y[i] == -1) {
        if (infer >= 0) return std::nullopt;
        infer = static_cast<int64_t>(i);
      } else if (y[i] < 0) {
        return std::nullopt;
      } else {
        known *= y[i];
      }
    }
    if (infer >= 0) {
      if (known == 0 || count % known != 0) return std::nullopt;
      y[static_cast<size_t>(infer)] = count / known;
    }
  } else {
    return std::nullopt;
  }
  if (y.empty() || y.size() > 5 ||
      std::accumulate(y.begin(), y.end(), int64_t{1}, std::multiplies<>()) != count) {
    return std::nullopt;  // the reference kernel reports it
  }
  return y;
}

bool Program::Impl::alias(size_t index) {
  const ir::Node& n = graph.nodes[index];
  auto it = values.find(n.inputs[0]);
  if (it == values.end() || !it->second.in_arena || it->second.info.dtype != at::kFloat) return false;
  if (channel_shuffle(index)) return true;
  const auto y = reshaped(n, it->second.info.sizes);
  if (!y) return false;
  define(n.outputs[0], plain_desc(*y), plain_buffer(n.inputs[0]));
  return true;
}

namespace {

// The strides of a plain strided layout (no inner blocks) of a 4-D desc, or empty.
std::vector<int64_t> strides_of(const memory::desc& md) {
  if (md.data.ndims != 4 || md.data.format_kind != dnnl_blocked || md.data.format_desc.blocking.inner_nblks != 0) {
    return {};
  }
  const auto* s = md.data.format_desc.blocking.strides;
  return {s[0], s[1], s[2], s[3]};
}

}  // namespace

// ShuffleNet's channel shuffle, Reshape [N, C, H, W] -> [N, g, C/g, H, W], Transpose (0, 2, 1,
// 3, 4), Reshape back to [N, C, H, W], each read only by the next: one reorder that permutes
// every pixel's channels (out channel j * g + i = in channel i * C/g + j), in the input's own
// layout (nhwc stays nhwc), instead of three copies through plain layouts.
bool Program::Impl::channel_shuffle(size_t index) {
  const ir::Node& n = graph.nodes[index];
  const Value& in = values.at(n.inputs[0]);
  const std::vector<int64_t>& x = in.info.sizes;
  const auto five = reshaped(n, x);
  if (x.size() != 4 || !five || five->size() != 5 || (*five)[0] != x[0] || (*five)[3] != x[2] || (*five)[4] != x[3]) {
    return false;
  }
  size_t t_index = 0, r_index = 0;
  const ir::Node* t = sole_reader(n.outputs[0], &t_index);
  if (t == nullptr || t->op_type != "Transpose" || !t->domain.empty() ||
      t->attributes.get_ints("perm", {}) != std::vector<int64_t>{0, 2, 1, 3, 4}) {
    return false;
  }
  const ir::Node* r = sole_reader(t->outputs[0], &r_index);
  if (r == nullptr || r->op_type != "Reshape" || !r->domain.empty() || r->inputs[0] != t->outputs[0]) return false;
  const int64_t g = (*five)[1], c = (*five)[2];
  const auto back = reshaped(*r, {x[0], c, g, x[2], x[3]});
  if (!back || *back != x) return false;
  std::vector<int64_t> s = strides_of(in.md);
  memory::desc layout = in.md;
  if (s.empty()) {  // blocked: shuffle in nhwc
    layout = memory::desc(to_dims(x), DataType::f32, Tag::nhwc);
    s = strides_of(layout);
  }
  const memory::dims dims{x[0], c, g, x[2], x[3]};
  const memory::desc from(dims, DataType::f32, memory::dims{s[0], s[1], c * s[1], s[2], s[3]});
  const memory::desc to(dims, DataType::f32, memory::dims{s[0], g * s[1], s[1], s[2], s[3]});
  std::optional<dnnl::reorder::primitive_desc> pd;
  try {
    pd.emplace(cpu_engine(), from, cpu_engine(), to, scratchpad_attr());
  } catch (const dnnl::error&) {
    return false;
  }
  Step st;
  st.name = r->name.empty() ? r->outputs[0] : r->name;
  st.op = "ChannelShuffle";
  // The input in `layout` (a reorder when it is blocked), read as the 5-D view.
  define(r->outputs[0], layout, copy_step(std::move(st), *pd, buffer_in(n.inputs[0], layout)));
  absorbed.insert(t_index);
  absorbed.insert(r_index);
  return true;
}

// Slice of a 4-D tensor along one axis with step 1 (constant bounds): a reorder of that part
// into a buffer of its own, in the input's layout when it is a strided one, else nhwc.
bool Program::Impl::slice(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (graph.opset() < 10 || n.inputs.size() < 3) return false;
  auto it = values.find(n.inputs[0]);
  if (it == values.end() || !it->second.in_arena || it->second.info.dtype != at::kFloat ||
      it->second.info.sizes.size() != 4) {
    return false;
  }
  const std::vector<int64_t> x = it->second.info.sizes;
  auto ints = [&](size_t k) -> std::optional<std::vector<int64_t>> {
    if (k >= n.inputs.size() || n.inputs[k].empty()) return std::nullopt;
    const at::Tensor* t = initializer(n.inputs[k]);
    if (t == nullptr || (t->scalar_type() != at::kLong && t->scalar_type() != at::kInt) || t->dim() != 1) {
      return std::nullopt;
    }
    return ops::to_int64_vector(*t);
  };
  const auto starts = ints(1), ends = ints(2);
  if (!starts || !ends || starts->size() != ends->size()) return false;
  std::vector<int64_t> axes(starts->size());
  for (size_t i = 0; i < axes.size(); ++i) axes[i] = static_cast<int64_t>(i);
  if (n.inputs.size() > 3 && !n.inputs[3].empty()) {
    auto a = ints(3);
    if (!a || a->size() != axes.size()) return false;
    axes = *a;
  }
  if (n.inputs.size() > 4 && !n.inputs[4].empty()) {
    auto st = ints(4);
    if (!st) return false;
    for (int64_t v : *st) {
      if (v != 1) return false;
    }
  }
  std::vector<int64_t> offset(4, 0), y = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t axis = axes[i] < 0 ? axes[i] + 4 : axes[i];
    if (axis < 0 || axis > 3) return false;
    const int64_t size = x[static_cast<size_t>(axis)];
    auto clamp = [&](int64_t v) { return std::clamp(v < 0 ? v + size : v, int64_t{0}, size); };
    const int64_t b = clamp((*starts)[i]), e = clamp((*ends)[i]);
    if (e <= b) return false;  // empty: the reference kernel makes it
    offset[static_cast<size_t>(axis)] = b;
    y[static_cast<size_t>(axis)] = e - b;
  }
  const Tag tag = it->second.md == plain_desc(x) ? Tag::nchw : Tag::nhwc;
  const memory::desc layout(to_dims(x), DataType::f32, tag);
  const memory::desc part = layout.submemory_desc(to_dims(y), to_dims(offset));
  const memory::desc out(to_dims(y), DataType::f32, tag);
  std::optional<dnnl::reorder::primitive_desc> pd;
  try {
    pd.emplace(cpu_engine(), part, cpu_engine(), out, scratchpad_attr());
  } catch (const dnnl::error&) {
    return false;
  }
  define(n.outputs[0], out, copy_step(Step{}, *pd, buffer_in(n.inputs[0], layout)));
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

// Convolutions: geometry, layout choice (Winograd, blocked layouts before depthwise-fused pairs), post-ops (residual sum, activation) and the pointwise + depthwise fusion.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"
#include "graft/exec/onednn/native.h"

namespace graft::exec::onednn {

std::optional<Program::Impl::ConvGeometry> Program::Impl::conv_geometry(const ir::Node& n, const std::vector<int64_t>& x) const {
  if (!is_conv(n) || n.inputs.size() < 2 || x.size() != 4) return std::nullopt;
  const bool fused = n.domain == passes::kDomain;
  ConvGeometry g;
  g.x = x;
  g.w = initializer(n.inputs[1]);
  const at::Tensor* w = g.w;
  if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 4) return std::nullopt;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    g.b = initializer(n.inputs[2]);
    if (g.b == nullptr || g.b->scalar_type() != at::kFloat || g.b->dim() != 1) return std::nullopt;
  }
  g.z = fused && n.inputs.size() > 3 ? n.inputs[3] : "";
  g.group = n.attributes.get_int("group", 1);
  g.strides = ints_or(n, "strides", {1, 1});
  g.dilations = ints_or(n, "dilations", {1, 1});
  g.kernel = {w->size(2), w->size(3)};
  if (g.strides.size() != 2 || g.dilations.size() != 2 ||
      !window_pads(n, x, g.kernel, g.strides, g.dilations, &g.pad_l, &g.pad_r)) {
    return std::nullopt;
  }
  if (g.group < 1 || x[1] != w->size(1) * g.group || w->size(0) % g.group != 0) return std::nullopt;
  g.y = {x[0], w->size(0), 0, 0};
  for (size_t i = 0; i < 2; ++i) {
    if (g.strides[i] < 1 || g.dilations[i] < 1) return std::nullopt;
    const int64_t span = x[i + 2] + g.pad_l[i] + g.pad_r[i] - ((g.kernel[i] - 1) * g.dilations[i] + 1);
    if (span < 0) return std::nullopt;
    g.y[i + 2] = span / g.strides[i] + 1;
  }
  const std::string act_name = fused ? n.attributes.get_string("activation", "") : "";
  if (!act_name.empty()) {
    g.act = activation_of(act_name, n.attributes.get_floats("activation_params", {}));
    if (!g.act) return std::nullopt;
  }
  return g;
}

// The depthwise node fused into pointwise convolution `n` (geometry `pw`), or nullopt.
std::optional<Program::Impl::DwPartner> Program::Impl::dw_partner(const ir::Node& n, const ConvGeometry& pw) const {
  if (!pw.pointwise() || !pw.z.empty() || pw.channels_in() % 16 != 0 || pw.channels_out() % 16 != 0) {
    return std::nullopt;
  }
  const auto& y = pw.y;
  if (pw.output_bytes() < kDwFusionBytes) return std::nullopt;
  size_t j = 0;
  const ir::Node* d = sole_reader(n.outputs[0], &j);
  if (d == nullptr || d->inputs[0] != n.outputs[0]) return std::nullopt;
  const auto dw = conv_geometry(*d, y);
  if (!dw || !dw->depthwise() || !dw->z.empty() || dw->kernel != std::vector<int64_t>{3, 3} ||
      dw->dilations != std::vector<int64_t>{1, 1} || dw->strides[0] != dw->strides[1] ||
      dw->strides[0] > 2 || dw->pad_l[0] != dw->pad_l[1]) {
    return std::nullopt;
  }
  // oneDNN's fused depthwise output is ceil(size / stride), padded at the end as needed; with
  // the same begin pad and output size, every window covers the same rows and columns.
  const int64_t s = dw->strides[0];
  for (size_t i = 2; i < 4; ++i) {
    if (dw->y[i] != (y[i] + s - 1) / s) return std::nullopt;
  }
  return DwPartner{j, *dw};
}

// Whether value `name` (sizes `x`) feeds a depthwise-fused pair, directly or through
// depthwise and pointwise convolutions: its producer should then write nChw16c, saving a
// reorder.
bool Program::Impl::feeds_dw_fusion(const std::string& name, const std::vector<int64_t>& x) const {
  const ir::Node* r = sole_reader(name);
  if (r == nullptr || r->inputs[0] != name) return false;
  const auto g = conv_geometry(*r, x);
  if (!g) return false;
  if (dw_partner(*r, *g)) return true;
  return (g->depthwise() || g->pointwise()) && g->z.empty() && g->channels_in() % 16 == 0 &&
         g->channels_out() % 16 == 0 && feeds_dw_fusion(r->outputs[0], g->y);
}

// Whether value `name` (sizes `x`) is read only by a convolution that runs Winograd.
bool Program::Impl::feeds_winograd(const std::string& name, const std::vector<int64_t>& x) const {
  const ir::Node* r = sole_reader(name);
  if (r == nullptr || r->inputs[0] != name) return false;
  const auto g = conv_geometry(*r, x);
  return g && g->onednn_winograd();
}

bool Program::Impl::read_by_winograd(const std::string& name, const std::vector<int64_t>& x) const {
  auto it = readers.find(name);
  if (it == readers.end()) return false;
  for (size_t r : it->second) {
    const ir::Node& n = graph.nodes[r];
    if (!is_conv(n) || n.inputs[0] != name) continue;
    const auto g = conv_geometry(n, x);
    if (g && g->onednn_winograd()) return true;
  }
  return false;
}

bool Program::Impl::in_nchw16c(const std::string& name, const std::vector<int64_t>& sizes) const {
  auto v = values.find(name);
  return v != values.end() && !v->second.view &&
         v->second.md == memory::desc(to_dims(sizes), DataType::f32, Tag::nChw16c);
}

bool Program::Impl::blocked_sum(const ConvGeometry& g, const std::string& x_name) const {
  if (!g.pointwise() || g.z.empty() || g.channels_in() % 16 != 0 || g.channels_out() % 16 != 0) return false;
  return g.output_bytes() >= kBlockedSumBytes && (in_nchw16c(x_name, g.x) || in_nchw16c(g.z, g.y));
}

bool Program::Impl::feeds_blocked_sum(const std::string& name) const {
  auto it = readers.find(name);
  if (it == readers.end()) return false;
  for (size_t r : it->second) {
    const ir::Node& n = graph.nodes[r];
    if (!is_conv(n) || n.inputs.size() < 4 || n.inputs[3] != name || n.inputs[0] == name) continue;
    // The reader's input is made before this residual (ResNet's downsample comes after the
    // block's convolutions): its layout is known.
    auto x = values.find(n.inputs[0]);
    if (x == values.end()) continue;
    const auto g = conv_geometry(n, x->second.info.sizes);
    if (g && blocked_sum(*g, n.inputs[0])) return true;
  }
  return false;
}

bool Program::Impl::conv(size_t index) {
  if (absorbed.count(index)) return true;  // computed by the convolution before it
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() < 2) return false;
  if (auto it = scaled_inputs.find(n.inputs[0]); it != scaled_inputs.end()) {
    const ScaledInput in = it->second;
    const auto g = conv_geometry(n, values.at(in.x).info.sizes);
    if (g && (g->z.empty() || (is_f32(g->z, 4) && values.at(g->z).info.sizes == g->y)) &&
        conv_scaled(index, *g, in)) {
      return true;
    }
    // Declined: the Mul runs after all, then this convolution as any other.
    scaled_inputs.erase(it);
    unscaled.insert(in.mul);
    const size_t here = current_node;
    current_node = in.mul;
    if (!binary(in.mul)) reference(in.mul);
    current_node = here;
  }
  if (!is_f32(n.inputs[0], 4)) return false;
  const auto geometry = conv_geometry(n, values.at(n.inputs[0]).info.sizes);
  if (!geometry) return false;
  const ConvGeometry& g = *geometry;
  if (!g.z.empty() && (!is_f32(g.z, 4) || values.at(g.z).info.sizes != g.y)) return false;
  const std::optional<DwPartner> partner = dw_partner(n, g);
  if (partner && conv_with_dw(index, g, *partner)) return true;
  if (g.own_winograd_pays() && conv_winograd(index, g)) return true;
  // graft's depthwise kernel reads nhwc; one reading nChw16c (a blocked run of MobileNet's
  // separable blocks) or writing for a fused pair stays with oneDNN's blocked kernel.
  if (g.own_depthwise_pays() && !feeds_dw_fusion(n.outputs[0], g.y) && conv_depthwise(index, g)) return true;
  if (g.own_grouped16_pays() && conv_grouped16(index, g)) return true;

  // Layouts: oneDNN's pick, except in front of a depthwise-fused pair or a Winograd
  // convolution, which read nChw16c: depthwise and pointwise convolutions before such a pair
  // then run in it too, and a first convolution (< 16 input channels, e.g. RGB) reads the
  // plain input and writes nChw16c directly (oneDNN's direct kernel for that is also faster
  // than the NHWC one after a reorder of the input: MobileNetV1's at batch 32, 2.8 ms against
  // 4.0 + 0.9).
  //
  // A large residual sum runs in nChw16c when its input or residual already is, and the
  // convolution making such a residual writes it (blocked_sum, impl.h); a 1x1 convolution of any
  // stride reading nChw16c without a residual stays in it (ResNet's downsample).
  //
  // Grouped (not depthwise) convolutions run in nhwc like the dense ones around them: oneDNN's
  // pick for them is blocked, and the reorders either side cost more than the blocked kernel
  // saves (RegNetX-400MF at batch 1: 45 reorders, 4.3 ms against 3.7 in nhwc; ResNeXt-50 29.2
  // against 27.7).
  Tag src_tag = Tag::any, dst_tag = Tag::any;
  bool sixteen_channel_stem = false;
  const bool blocked_input = in_nchw16c(n.inputs[0], g.x);
  if (g.group > 1 && !g.depthwise()) {
    src_tag = dst_tag = Tag::nhwc;
  } else if (blocked_sum(g, n.inputs[0])) {
    src_tag = dst_tag = Tag::nChw16c;
  } else if (blocked_input && g.one_by_one() && g.channels_in() % 16 == 0 && g.channels_out() % 16 == 0 &&
             (g.z.empty() || (g.pointwise() && read_by_winograd(n.outputs[0], g.y)))) {
    src_tag = dst_tag = Tag::nChw16c;
  } else if (g.z.empty() && g.channels_out() % 16 == 0 && feeds_blocked_sum(n.outputs[0])) {
    dst_tag = Tag::nChw16c;
    if (blocked_input) src_tag = Tag::nChw16c;
  } else if (g.z.empty() && g.channels_out() % 16 == 0) {
    const bool stem = g.channels_in() < 16 && g.group == 1 && values.at(n.inputs[0]).md == plain_desc(g.x);
    const bool to_pair = feeds_dw_fusion(n.outputs[0], g.y);
    if (to_pair && (g.depthwise() || g.pointwise()) && g.channels_in() % 16 == 0) {
      src_tag = dst_tag = Tag::nChw16c;
    } else if (stem && (to_pair || feeds_winograd(n.outputs[0], g.y))) {
      src_tag = Tag::nchw;
      dst_tag = Tag::nChw16c;
    } else if (stem && g.channels_out() == 16) {
      // With 16 channels nChw16c is nhwc byte for byte: the stem writes it for readers that
      // take nhwc, and the input needs no reorder (MobileNetV3's 3 -> 16 at 224x224: 0.036 ms
      // against 0.022 + 0.041 for the reorder and the NHWC kernel).
      src_tag = Tag::nchw;
      dst_tag = Tag::nChw16c;
      sixteen_channel_stem = true;
    }
  }
  const int64_t oc = g.channels_out();
  const memory::dims w_dims = g.group == 1 ? memory::dims{oc, g.w->size(1), g.kernel[0], g.kernel[1]}
                                           : memory::dims{g.group, oc / g.group, g.w->size(1), g.kernel[0], g.kernel[1]};
  const memory::desc w_plain(w_dims, DataType::f32, g.group == 1 ? Tag::oihw : Tag::goihw);
  const memory::desc b_md({oc}, DataType::f32, Tag::x);
  dnnl::post_ops po;
  if (!g.z.empty()) po.append_sum(1.f);
  const bool silu_after = g.act && native_silu_pays(*g.act, g.y);
  if (g.act && !silu_after) append_activation(po, *g.act);
  dnnl::primitive_attr attr = scratchpad_attr();
  attr.set_post_ops(po);
  std::optional<dnnl::convolution_forward::primitive_desc> pd;
  const auto make_pd = [&](dnnl::algorithm algorithm, Tag src, Tag dst) {
    const memory::dims dil{g.dilations[0] - 1, g.dilations[1] - 1};
    dnnl::convolution_forward::desc d(
        dnnl::prop_kind::forward_inference, algorithm, memory::desc(to_dims(g.x), DataType::f32, src),
        memory::desc(w_dims, DataType::f32, Tag::any), g.b ? b_md : memory::desc(),
        memory::desc(to_dims(g.y), DataType::f32, dst), to_dims(g.strides), dil, g.pad_l, g.pad_r);
    pd.emplace(d, attr, cpu_engine());
  };
  // An activation oneDNN's Winograd kernels do not take as a post-op (they take Relu; not
  // SiLU, GELU, HardSwish...): Winograd, then the activation as an in-place step of its own
  // (EfficientNetV2-S's 48 -> 192 3x3 at 96x96, batch 1: 3.33 ms direct with SiLU fused,
  // 1.79 + 0.51 Winograd then SiLU).
  std::optional<dnnl::eltwise_forward::primitive_desc> after;
  if (g.onednn_winograd()) {
    try {
      make_pd(dnnl::algorithm::convolution_winograd, Tag::any, Tag::any);
    } catch (const dnnl::error&) {
      pd.reset();
    }
    if (!pd && g.act && !g.act->hard_sigmoid && !silu_after) {
      // (A fresh attribute: oneDNN 2.6 ignores setting an empty post-op list.)
      attr = scratchpad_attr();
      if (!g.z.empty()) {
        dnnl::post_ops sum_only;
        sum_only.append_sum(1.f);
        attr.set_post_ops(sum_only);
      }
      try {
        make_pd(dnnl::algorithm::convolution_winograd, Tag::any, Tag::any);
        dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, g.act->algorithm, pd->dst_desc(),
                                      g.act->alpha, g.act->beta);
        after.emplace(d, scratchpad_attr(), cpu_engine());
      } catch (const dnnl::error&) {
        pd.reset();
        after.reset();
      }
      if (!pd) {
        attr = scratchpad_attr();
        attr.set_post_ops(po);
      }
    }
  }
  for (const Tag tag : {src_tag, Tag::any}) {
    if (pd) break;
    try {
      make_pd(dnnl::algorithm::convolution_direct, tag, tag == src_tag ? dst_tag : Tag::any);
    } catch (const dnnl::error&) {
      if (tag == Tag::any) return false;
    }
  }
  Step s;
  s.prim = dnnl::convolution_forward(*pd);
  bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
  bind_weights(s, n.inputs[1], *g.w, w_plain, pd->weights_desc(), g.b, b_md);
  const memory::desc dst_md = pd->dst_desc();
  const int dst = g.z.empty() ? new_buffer(dst_md) : sum_destination(index, g.z, dst_md);
  s.args[DNNL_ARG_DST] = memory(dst_md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(s.args[DNNL_ARG_DST], dst);
  s.writes.push_back(dst);
  if (!g.z.empty()) s.reads.push_back(dst);
  push(std::move(s));
  if (after) eltwise_in_place(*after, dst);
  if (silu_after) silu_step(dst, dst_md);
  const memory::desc nhwc(to_dims(g.y), DataType::f32, Tag::nhwc);
  const bool as_nhwc = sixteen_channel_stem && dst_md == memory::desc(to_dims(g.y), DataType::f32, Tag::nChw16c);
  define(n.outputs[0], as_nhwc ? nhwc : dst_md, dst);
  return true;
}

bool Program::Impl::conv_winograd(size_t index, const ConvGeometry& g) {
  const ir::Node& n = graph.nodes[index];
  const memory::desc x_md(to_dims(g.x), DataType::f32, Tag::nhwc);
  const Value& x = values.at(n.inputs[0]);
  if (!x.in_arena && x.md == x_md) return false;  // native steps read arena buffers, not a graph input
  const Epilogue e = g.act ? *epilogue_of(*g.act) : Epilogue{};  // own_winograd_pays() admitted it
  const int64_t batch = g.y[0], ic = g.channels_in(), oc = g.channels_out(), h = g.y[2], w = g.y[3];
  const int64_t tiles = winograd_tiles(batch, h, w);
  const memory::desc v_md({16, tiles, ic}, DataType::f32, Tag::abc), m_md({16, tiles, oc}, DataType::f32, Tag::abc);
  const memory::desc u_plain({16, ic, oc}, DataType::f32, Tag::abc);
  std::optional<dnnl::matmul::primitive_desc> pd;
  try {
    pd.emplace(dnnl::matmul::desc(v_md, memory::desc({16, ic, oc}, DataType::f32, Tag::any), m_md), scratchpad_attr(),
               cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (std::string(pd->impl_info_str()).rfind("ref", 0) == 0) return false;  // then the direct kernel is faster
  const at::Tensor kernel = g.w->contiguous();
  at::Tensor u = at::empty({16, ic, oc}, at::kFloat);
  winograd_weights(kernel.data_ptr<float>(), oc, ic, u.data_ptr<float>());
  const float* bias = nullptr;
  if (g.b != nullptr) {
    keep_alive.push_back(g.b->contiguous());
    bias = keep_alive.back().data_ptr<float>();
  }
  const int v = new_buffer(v_md), m = new_buffer(m_md);

  Step in;
  in.kernel = "graft:winograd_input";
  bind(in, DNNL_ARG_SRC, n.inputs[0], x_md);
  in.args[DNNL_ARG_DST] = memory(v_md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(in.args[DNNL_ARG_DST], v);
  in.writes.push_back(v);
  in.native = [batch, ih = g.x[2], iw = g.x[3], ic](const Step& step) {
    winograd_input(static_cast<const float*>(step.args.at(DNNL_ARG_SRC).get_data_handle()), batch, ih, iw, ic,
                   static_cast<float*>(step.args.at(DNNL_ARG_DST).get_data_handle()));
  };
  push(std::move(in));

  Step product;
  product.prim = dnnl::matmul(*pd);
  product.args[DNNL_ARG_SRC] = memory(v_md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(product.args[DNNL_ARG_SRC], v);
  product.reads.push_back(v);
  product.args[DNNL_ARG_WEIGHTS] = weights.get(n.inputs[1] + "#winograd F(2x2,3x3)", u, u_plain, pd->weights_desc(), stream);
  product.args[DNNL_ARG_DST] = memory(m_md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(product.args[DNNL_ARG_DST], m);
  product.writes.push_back(m);
  push(std::move(product));

  Step out;
  out.kernel = "graft:winograd_output";
  out.args[DNNL_ARG_SRC] = memory(m_md, cpu_engine(), DNNL_MEMORY_NONE);
  attach(out.args[DNNL_ARG_SRC], m);
  out.reads.push_back(m);
  out.native = [batch, h, w, oc, bias, e](const Step& step) {
    winograd_output(static_cast<const float*>(step.args.at(DNNL_ARG_SRC).get_data_handle()), batch, h, w, oc, bias,
                    e, static_cast<float*>(step.args.at(DNNL_ARG_DST).get_data_handle()));
  };
  emit_output(out, n.outputs[0], memory::desc(to_dims(g.y), DataType::f32, Tag::nhwc));
  return true;
}

bool Program::Impl::conv_depthwise(size_t index, const ConvGeometry& g) {
  const int64_t c = g.channels_in(), k = g.kernel[0];
  return conv_native(index, g, "graft:depthwise", k * k * c, [c, k](const float* w, float* packed) {
    depthwise_weights(w, c, k, packed);
  }, depthwise);
}

bool Program::Impl::conv_grouped16(size_t index, const ConvGeometry& g) {
  const int64_t groups = g.group, k = g.kernel[0];
  return conv_native(index, g, "graft:grouped16", groups * k * k * 256, [groups, k](const float* w, float* packed) {
    grouped16_weights(w, groups, k, packed);
  }, grouped16);
}

bool Program::Impl::conv_native(size_t index, const ConvGeometry& g, const char* kernel_name, int64_t packed_size,
                                const std::function<void(const float*, float*)>& pack, NativeConv run) {
  const ir::Node& n = graph.nodes[index];
  const memory::desc x_md(to_dims(g.x), DataType::f32, Tag::nhwc);
  const Value& x = values.at(n.inputs[0]);
  if (!x.in_arena || x.view || x.md != x_md) return false;  // a graph input, blocked, or a strided view
  const Epilogue e = g.act ? *epilogue_of(*g.act) : Epilogue{};
  const at::Tensor kernel = g.w->contiguous();
  keep_alive.push_back(at::empty({packed_size}, at::kFloat));
  pack(kernel.data_ptr<float>(), keep_alive.back().data_ptr<float>());
  const float* packed = keep_alive.back().data_ptr<float>();
  const float* bias = nullptr;
  if (g.b != nullptr) {
    keep_alive.push_back(g.b->contiguous());
    bias = keep_alive.back().data_ptr<float>();
  }
  DepthwiseShape shape;
  shape.batch = g.x[0];
  shape.h = g.x[2];
  shape.w = g.x[3];
  shape.channels = g.channels_in();
  shape.kernel = g.kernel[0];
  shape.stride = g.strides[0];
  shape.pad_top = g.pad_l[0];
  shape.pad_left = g.pad_l[1];
  shape.out_h = g.y[2];
  shape.out_w = g.y[3];
  Step s;
  s.kernel = kernel_name;
  bind(s, DNNL_ARG_SRC, n.inputs[0], x_md);
  s.native = [shape, packed, bias, e, run](const Step& step) {
    run(static_cast<const float*>(step.args.at(DNNL_ARG_SRC).get_data_handle()), shape, packed, bias, e,
        static_cast<float*>(step.args.at(DNNL_ARG_DST).get_data_handle()));
  };
  emit_output(s, n.outputs[0], memory::desc(to_dims(g.y), DataType::f32, Tag::nhwc));
  return true;
}

int Program::Impl::sum_destination(size_t index, const std::string& z, const memory::desc& md) {
  const Value& zv = values.at(z);
  if (zv.in_arena && !zv.view && zv.md == md && last_use_here(z, index) && z != graph.nodes[index].inputs[0] &&
      !shared(zv.buffer, z)) {
    return zv.buffer;  // the sum accumulates into the residual's own buffer
  }
  const int dst = new_buffer(md);
  reorder_into(z, md, dst);
  return dst;
}

bool Program::Impl::scale_into_weights(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (unscaled.count(index) || n.outputs.size() != 1) return false;
  std::string x = n.inputs[0], scale = n.inputs[1];
  for (const auto& in : {x, scale}) {
    if (initializer(in) != nullptr || !is_f32(in, 4) || !values.at(in).in_arena) return false;
  }
  if (values.at(x).info.sizes[2] * values.at(x).info.sizes[3] == 1) std::swap(x, scale);
  const std::vector<int64_t>& xs = values.at(x).info.sizes;
  if (values.at(scale).info.sizes != std::vector<int64_t>{xs[0], xs[1], 1, 1}) return false;
  size_t j = 0;
  const ir::Node* r = sole_reader(n.outputs[0], &j);
  if (r == nullptr || j <= index || r->inputs[0] != n.outputs[0]) return false;
  const auto g = conv_geometry(*r, xs);
  // Per sample: a binary and (unless it writes the kernel's layout) a reorder over O x I
  // weights, against the Mul over H x W x I; and only where the Mul is large enough not to stay
  // in cache: smaller ones cost less than the two steps' overhead (EfficientNet-B0 at batch 8:
  // its 14x14 Muls 0.12 ms, folded 0.33).
  if (!g || !g->pointwise() || 2 * g->channels_out() > xs[2] * xs[3] || xs[1] * xs[2] * xs[3] < kScaledMinimum) {
    return false;
  }
  scaled_inputs[n.outputs[0]] = {x, scale, index};
  for (const auto& in : {x, scale}) {
    int& last = last_node_use[in];
    last = std::max(last, static_cast<int>(j));
  }
  return true;
}

bool Program::Impl::conv_scaled(size_t index, const ConvGeometry& g, const ScaledInput& in) {
  const ir::Node& n = graph.nodes[index];
  const ir::Node& mul = graph.nodes[in.mul];
  const int64_t batch = g.x[0], oc = g.channels_out(), ic = g.channels_in();
  std::vector<int64_t> x1 = g.x, y1 = g.y;
  x1[0] = y1[0] = 1;
  dnnl::post_ops po;
  if (!g.z.empty()) po.append_sum(1.f);
  if (g.act) append_activation(po, *g.act);
  dnnl::primitive_attr attr = scratchpad_attr();
  attr.set_post_ops(po);
  const memory::dims w_dims{oc, ic, 1, 1};
  const memory::desc w_plain(w_dims, DataType::f32, Tag::oihw);
  const memory::desc s_md({1, ic, 1, 1}, DataType::f32, Tag::nchw);
  const memory::desc b_md({oc}, DataType::f32, Tag::x);
  // x's own layout when it has one a sample view can take (the convolution then reads it
  // without a reorder), else oneDNN's pick.
  Tag tag = Tag::any;
  for (const Tag t : {Tag::nhwc, Tag::nChw16c, Tag::nChw8c}) {
    if (values.at(in.x).md == memory::desc(to_dims(g.x), DataType::f32, t)) tag = t;
  }
  std::optional<dnnl::convolution_forward::primitive_desc> pd;
  std::optional<dnnl::binary::primitive_desc> scale_pd;
  bool direct = true;  // the binary writes the kernel's weight layout itself
  try {
    const auto make_conv = [&](Tag t) {
      dnnl::convolution_forward::desc d(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          memory::desc(to_dims(x1), DataType::f32, t), memory::desc(w_dims, DataType::f32, Tag::any),
          g.b ? b_md : memory::desc(), memory::desc(to_dims(y1), DataType::f32, t), {1, 1}, {0, 0}, {0, 0},
          {0, 0});
      pd.emplace(d, attr, cpu_engine());
    };
    try {
      make_conv(tag);
    } catch (const dnnl::error&) {
      if (tag == Tag::any) throw;
      make_conv(Tag::any);
    }
    const auto make_scale = [&](const memory::desc& dst) {
      return dnnl::binary::primitive_desc(dnnl::binary::desc(dnnl::algorithm::binary_mul, w_plain, s_md, dst),
                                          scratchpad_attr(), cpu_engine());
    };
    scale_pd.emplace(make_scale(pd->weights_desc()));
    if (std::string(scale_pd->impl_info_str()).rfind("ref", 0) == 0) {
      scale_pd.emplace(make_scale(w_plain));
      direct = false;
    }
  } catch (const dnnl::error&) {
    return false;
  }
  // Sample by sample through views of the whole tensors: layouts whose batch is outermost.
  const auto whole = [](const memory::desc& one, const std::vector<int64_t>& sizes) -> std::optional<memory::desc> {
    std::vector<int64_t> s1 = sizes;
    s1[0] = 1;
    for (const Tag t : {Tag::nhwc, Tag::nChw16c, Tag::nChw8c, Tag::nchw}) {
      if (one == memory::desc(to_dims(s1), DataType::f32, t)) return memory::desc(to_dims(sizes), DataType::f32, t);
    }
    return std::nullopt;
  };
  const auto src_md = whole(pd->src_desc(), g.x), dst_md = whole(pd->dst_desc(), g.y);
  if (!src_md || !dst_md) return false;
  const size_t src_bytes = pd->src_desc().get_size(), dst_bytes = pd->dst_desc().get_size();
  const int x_buffer = buffer_in(in.x, *src_md);
  const int s_buffer = plain_buffer(in.scale);
  const int dst = g.z.empty() ? new_buffer(*dst_md) : sum_destination(index, g.z, *dst_md);
  keep_alive.push_back(g.w->contiguous());
  const memory w_mem(w_plain, cpu_engine(), keep_alive.back().data_ptr());
  const int w_buffer = new_buffer(pd->weights_desc());
  const int plain_w_buffer = direct ? w_buffer : new_buffer(w_plain);
  std::optional<memory> bias;
  if (g.b != nullptr) {
    keep_alive.push_back(g.b->contiguous());
    bias.emplace(b_md, cpu_engine(), keep_alive.back().data_ptr());
  }
  const dnnl::convolution_forward conv_prim(*pd);
  const dnnl::binary scale_prim(*scale_pd);
  const std::string mul_name = mul.name.empty() ? mul.outputs[0] : mul.name;
  for (int64_t k = 0; k < batch; ++k) {
    Step m;
    m.prim = scale_prim;
    m.name = mul_name;
    m.op = "Mul";
    m.args[DNNL_ARG_SRC_0] = w_mem;
    m.args[DNNL_ARG_SRC_1] = memory(s_md, cpu_engine(), DNNL_MEMORY_NONE);
    attach(m.args[DNNL_ARG_SRC_1], s_buffer, static_cast<size_t>(k * ic) * sizeof(float));
    m.reads.push_back(s_buffer);
    m.args[DNNL_ARG_DST] = memory(scale_pd->dst_desc(), cpu_engine(), DNNL_MEMORY_NONE);
    attach(m.args[DNNL_ARG_DST], plain_w_buffer);
    m.writes.push_back(plain_w_buffer);
    push(std::move(m));
    if (!direct) {
      Step r;
      r.name = mul_name;
      r.op = "Reorder";
      r.prim = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), w_plain, cpu_engine(), pd->weights_desc(),
                                                            scratchpad_attr()));
      r.args[DNNL_ARG_FROM] = memory(w_plain, cpu_engine(), DNNL_MEMORY_NONE);
      attach(r.args[DNNL_ARG_FROM], plain_w_buffer);
      r.args[DNNL_ARG_TO] = memory(pd->weights_desc(), cpu_engine(), DNNL_MEMORY_NONE);
      attach(r.args[DNNL_ARG_TO], w_buffer);
      r.reads.push_back(plain_w_buffer);
      r.writes.push_back(w_buffer);
      push(std::move(r));
    }
    Step c;
    c.prim = conv_prim;
    c.args[DNNL_ARG_SRC] = memory(pd->src_desc(), cpu_engine(), DNNL_MEMORY_NONE);
    attach(c.args[DNNL_ARG_SRC], x_buffer, static_cast<size_t>(k) * src_bytes);
    c.args[DNNL_ARG_WEIGHTS] = memory(pd->weights_desc(), cpu_engine(), DNNL_MEMORY_NONE);
    attach(c.args[DNNL_ARG_WEIGHTS], w_buffer);
    if (bias) c.args[DNNL_ARG_BIAS] = *bias;
    c.args[DNNL_ARG_DST] = memory(pd->dst_desc(), cpu_engine(), DNNL_MEMORY_NONE);
    attach(c.args[DNNL_ARG_DST], dst, static_cast<size_t>(k) * dst_bytes);
    c.reads = {x_buffer, w_buffer};
    if (!g.z.empty()) c.reads.push_back(dst);
    c.writes.push_back(dst);
    push(std::move(c));
  }
  define(n.outputs[0], *dst_md, dst);
  return true;
}

// Pointwise convolution `index` (geometry `pw`) with its depthwise partner as a post-op, both
// in nChw16c; false (having changed nothing) when oneDNN declines.
bool Program::Impl::conv_with_dw(size_t index, const ConvGeometry& pw, const DwPartner& partner) {
  const ir::Node& n = graph.nodes[index];
  const ir::Node& d = graph.nodes[partner.node];
  const ConvGeometry& dw = partner.geometry;
  const int64_t c = pw.channels_out();
  dnnl::post_ops po;
  if (pw.act) append_activation(po, *pw.act);
  po.append_dw(DataType::f32, DataType::f32, DataType::f32, 3, dw.strides[0], dw.pad_l[0], 0, {});
  if (dw.act) append_activation(po, *dw.act);
  dnnl::primitive_attr attr = scratchpad_attr();
  attr.set_post_ops(po);
  const memory::dims w_dims{c, pw.channels_in(), 1, 1};
  const memory::desc b_md({c}, DataType::f32, Tag::x);
  std::optional<dnnl::convolution_forward::primitive_desc> pd;
  try {
    dnnl::convolution_forward::desc desc(
        dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
        memory::desc(to_dims(pw.x), DataType::f32, Tag::nChw16c), memory::desc(w_dims, DataType::f32, Tag::any),
        pw.b ? b_md : memory::desc(), memory::desc(to_dims(pw.y), DataType::f32, Tag::nChw16c), {1, 1},
        {0, 0}, {0, 0}, {0, 0});
    pd.emplace(desc, attr, cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (to_sizes(pd->dst_desc()) != dw.y || std::string(pd->impl_info_str()).rfind("ref", 0) == 0) {
    return false;  // not the fused kernel (oneDNN's reference fusion runs the two apart)
  }
  Step s;
  s.prim = dnnl::convolution_forward(*pd);
  bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
  bind_weights(s, n.inputs[1], *pw.w, memory::desc(w_dims, DataType::f32, Tag::oihw), pd->weights_desc(),
               pw.b, b_md);
  const int dw_arg = DNNL_ARG_ATTR_POST_OP_DW;
  s.args[dw_arg | DNNL_ARG_WEIGHTS] =
      weights.get(d.inputs[1], *dw.w, memory::desc({c, 1, 1, 3, 3}, DataType::f32, Tag::goihw),
                  pd->query_md(dnnl::query::exec_arg_md, dw_arg | DNNL_ARG_WEIGHTS), stream);
  keep_alive.push_back(dw.b ? dw.b->contiguous() : at::zeros({c}, at::kFloat));
  s.args[dw_arg | DNNL_ARG_BIAS] = memory(b_md, cpu_engine(), keep_alive.back().data_ptr());
  s.name = (n.name.empty() ? n.outputs[0] : n.name) + "+" + (d.name.empty() ? d.outputs[0] : d.name);
  s.op = "Conv+DepthwiseConv";
  emit_output(s, d.outputs[0], pd->dst_desc());
  absorbed.insert(partner.node);
  return true;
}

}  // namespace graft::exec::onednn

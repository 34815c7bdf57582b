// Element-wise activations, binary arithmetic with broadcasting, and Softmax.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"
#include "graft/exec/onednn/native.h"

namespace graft::exec::onednn {

std::optional<Activation> Program::Impl::node_activation(const ir::Node& n) const {
  if (!n.domain.empty() && n.domain != passes::kDomain) return std::nullopt;
  std::string op = n.op_type;
  if (n.domain == passes::kDomain && op != "Silu" && op != "Gelu") return std::nullopt;
  std::vector<float> p;
  if (op == "Gelu" && n.attributes.get_string("approximate", "none") == "tanh") {
    op = "GeluTanh";
  } else if (op == "LeakyRelu") {
    p = {n.attributes.get_float("alpha", 0.01f)};
  } else if (op == "HardSigmoid") {
    p = {n.attributes.get_float("alpha", 0.2f), n.attributes.get_float("beta", 0.5f)};
  } else if (op == "Clip") {
    float lo = n.attributes.get_float("min", -std::numeric_limits<float>::max());
    float hi = n.attributes.get_float("max", std::numeric_limits<float>::max());
    for (size_t k = 1; k < 3 && k < n.inputs.size(); ++k) {
      if (n.inputs[k].empty()) continue;
      const at::Tensor* c = initializer(n.inputs[k]);
      if (c == nullptr || c->numel() != 1 || c->scalar_type() != at::kFloat) return std::nullopt;
      (k == 1 ? lo : hi) = c->item<float>();
    }
    p = {lo, hi};
  }
  return activation_of(op, p);
}

std::optional<std::pair<std::string, size_t>> Program::Impl::activation_after(const std::string& value,
                                                                              dnnl::post_ops& po) const {
  size_t j = 0;
  const ir::Node* r = sole_reader(value, &j);
  if (r == nullptr || r->inputs.empty() || r->inputs[0] != value || r->outputs.size() != 1) return std::nullopt;
  const auto act = node_activation(*r);
  if (!act) return std::nullopt;
  append_activation(po, *act);
  return std::make_pair(r->outputs[0], j);
}

bool Program::Impl::native_silu_pays(const Activation& act, const std::vector<int64_t>& sizes) {
  const int64_t values = std::accumulate(sizes.begin(), sizes.end(), int64_t{1}, std::multiplies<>());
  return act.algorithm == dnnl::algorithm::eltwise_swish && act.alpha == 1.f &&
         values >= kNativeSiluMinimum && fast_silu();
}

void Program::Impl::silu_step(int buffer, const memory::desc& md) {
  Step s;
  s.kernel = "graft:silu";
  const auto n = static_cast<int64_t>(md.get_size() / sizeof(float));  // blocked padding included
  s.native = [n](const Step& step) {
    silu_in_place(static_cast<float*>(step.args.at(DNNL_ARG_DST).get_data_handle()), n);
  };
  push_in_place(std::move(s), buffer, md);
}

bool Program::Impl::eltwise(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (!is_f32(n.inputs[0])) return false;
  const auto act = node_activation(n);
  if (!act) return false;
  const memory::desc md = layout(n.inputs[0]);
  const auto make = [&](dnnl::algorithm algorithm, float alpha, float beta) {
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, algorithm, md, alpha, beta);
    return dnnl::eltwise_forward::primitive_desc(d, scratchpad_attr(), cpu_engine());
  };
  if (!unary<dnnl::eltwise_forward>(n, [&] { return make(act->algorithm, act->alpha, act->beta); })) return false;
  if (act->hard_sigmoid) {
    // oneDNN 2.6 has no hard sigmoid, and its JIT eltwise kernels take no post-ops (the clip as a
    // post-op runs the reference kernel): the clip is a second, in-place step.
    eltwise_in_place(make(dnnl::algorithm::eltwise_clip_v2, 0.f, 1.f), values.at(n.outputs[0]).buffer);
  }
  return true;
}

bool Program::Impl::binary(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() != 2) return false;
  if (n.op_type == "Mul" && scale_into_weights(index)) return true;
  std::string a = n.inputs[0], b = n.inputs[1];
  std::vector<int64_t> y;  // the output: the larger operand's sizes, when one is full
  for (const auto& in : {a, b}) {
    if (initializer(in) == nullptr && is_f32(in, 4)) {
      const auto& sz = values.at(in).info.sizes;
      if (y.empty() || std::accumulate(sz.begin(), sz.end(), int64_t{1}, std::multiplies<>()) >
                           std::accumulate(y.begin(), y.end(), int64_t{1}, std::multiplies<>())) {
        y = sz;
      }
    }
  }
  if (y.empty()) return false;
  const bool commutative = n.op_type == "Add" || n.op_type == "Mul";
  auto full = [&](const std::string& name) {
    return initializer(name) == nullptr && is_f32(name, 4) && values.at(name).info.sizes == y;
  };
  if (!full(a)) {
    if (!commutative || !full(b)) return false;
    std::swap(a, b);
  }
  // The second operand: a full tensor, or one broadcast along some axes (a constant or not).
  std::vector<int64_t> b_sizes;
  const at::Tensor* constant = initializer(b);
  if (constant != nullptr) {
    if (constant->scalar_type() != at::kFloat || constant->dim() > 4) return false;
    b_sizes = constant->sizes().vec();
  } else {
    if (!is_f32(b, 4)) return false;
    b_sizes = values.at(b).info.sizes;
  }
  b_sizes.insert(b_sizes.begin(), 4 - b_sizes.size(), 1);
  for (size_t i = 0; i < 4; ++i) {
    if (b_sizes[i] != y[i] && b_sizes[i] != 1) return false;
  }
  const dnnl::algorithm alg = n.op_type == "Add"   ? dnnl::algorithm::binary_add
                              : n.op_type == "Sub" ? dnnl::algorithm::binary_sub
                              : n.op_type == "Mul" ? dnnl::algorithm::binary_mul
                                                   : dnnl::algorithm::binary_div;
  const memory::desc a_md = layout(a);
  const memory::desc b_md = b_sizes == y ? a_md : broadcast_desc(a_md, y, b_sizes);
  std::optional<dnnl::binary::primitive_desc> pd;
  try {
    dnnl::binary::desc d(alg, a_md, b_md, a_md);
    pd.emplace(d, scratchpad_attr(), cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  Step s;
  s.prim = dnnl::binary(*pd);
  bind(s, DNNL_ARG_SRC_0, a, a_md);
  if (constant != nullptr) {
    s.args[DNNL_ARG_SRC_1] = constant_memory(b, *constant, plain_desc(b_sizes), b_md);
  } else {
    bind(s, DNNL_ARG_SRC_1, b, b_md);
  }
  emit_output(s, n.outputs[0], pd->dst_desc());
  return true;
}

// Softmax over the last axis of a 2-D tensor (a classifier's): the same for every opset.
bool Program::Impl::softmax(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (!is_f32(n.inputs[0], 2)) return false;
  const int64_t axis = n.attributes.get_int("axis", graph.opset() < 13 ? 1 : -1);
  if (axis != 1 && axis != -1) return false;
  return unary<dnnl::softmax_forward>(n, [&] {
    dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, layout(n.inputs[0]), 1);
    return dnnl::softmax_forward::primitive_desc(d, scratchpad_attr(), cpu_engine());
  });
}

}  // namespace graft::exec::onednn

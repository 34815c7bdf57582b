// Gemm (and MatMul) with constant weights as oneDNN inner products.
#include <ATen/ATen.h>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

// Gemm with constant weights, Y = A B' + C (alpha, beta 1; C a row of biases or absent): a
// classifier. (Through ATen it would call OpenBLAS, whose own threads then spin against
// oneDNN's OpenMP threads on the next run.)
bool Program::Impl::gemm(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() < 2 || !is_f32(n.inputs[0], 2) || initializer(n.inputs[0]) != nullptr) return false;
  if (n.attributes.get_int("transA", 0) != 0 || n.attributes.get_float("alpha", 1.f) != 1.f ||
      n.attributes.get_float("beta", 1.f) != 1.f) {
    return false;
  }
  const at::Tensor* w = initializer(n.inputs[1]);
  if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 2) return false;
  const bool trans_b = n.attributes.get_int("transB", 0) != 0;
  const int64_t k = trans_b ? w->size(1) : w->size(0), m = trans_b ? w->size(0) : w->size(1);
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  if (x[1] != k) return false;
  const at::Tensor* c = nullptr;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    c = initializer(n.inputs[2]);
    if (c == nullptr || c->scalar_type() != at::kFloat || c->numel() != m ||
        (c->dim() == 2 && c->size(0) != 1) || c->dim() > 2) {
      return false;
    }
  }
  // B as oneDNN's (out, in) weights: B itself when transposed, else B read column-wise.
  const memory::desc w_plain({m, k}, DataType::f32, trans_b ? Tag::oi : Tag::io);
  const memory::desc b_md({m}, DataType::f32, Tag::x);
  std::optional<dnnl::inner_product_forward::primitive_desc> pd;
  try {
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, values.at(n.inputs[0]).md,
                                        memory::desc({m, k}, DataType::f32, Tag::any),
                                        c ? b_md : memory::desc(),
                                        memory::desc({x[0], m}, DataType::f32, Tag::any));
    pd.emplace(d, scratchpad_attr(), cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  Step s;
  s.prim = dnnl::inner_product_forward(*pd);
  bind(s, DNNL_ARG_SRC, n.inputs[0], pd->src_desc());
  bind_weights(s, n.inputs[1], *w, w_plain, pd->weights_desc(), c, b_md);
  emit_output(s, n.outputs[0], pd->dst_desc());
  return true;
}

}  // namespace graft::exec::onednn

// Gemm and graft.FusedMatMul with constant weights as oneDNN inner products, an activation that
// follows (read by nothing else) fused as a post-op. (Through ATen they would call OpenBLAS,
// whose own threads then spin against oneDNN's OpenMP threads on the next run.)
#include <ATen/ATen.h>

#include <functional>
#include <numeric>

#include "graft/exec/onednn/impl.h"

namespace graft::exec::onednn {

// An inner product of `x` viewed as [m, k] by constant weights `w` (laid out as `w_plain`,
// dims [n, k]) plus the row `bias`, writing [m, n] viewed as `y_sizes` (plain) to `out` (or to
// the output of the activation it absorbs).
bool Program::Impl::inner_product(const std::string& x, int64_t m, int64_t k, const std::string& w_name,
                                  const at::Tensor& w, const memory::desc& w_plain, const at::Tensor* bias,
                                  const std::string& out, const std::vector<int64_t>& y_sizes,
                                  const std::string& activation, const std::vector<float>& params) {
  const int64_t n = w_plain.dims()[0];
  const memory::desc b_md({n}, DataType::f32, Tag::x);
  dnnl::post_ops po;
  if (!activation.empty()) {
    const auto act = activation_of(activation, params);
    if (!act) return false;
    append_activation(po, *act);
  }
  std::string result = out;
  std::optional<std::pair<std::string, size_t>> next;
  if (activation.empty() && (next = activation_after(out, po))) result = next->first;
  const memory::desc src_md({m, k}, DataType::f32, Tag::ab);
  std::optional<dnnl::inner_product_forward::primitive_desc> pd;
  try {
    dnnl::primitive_attr attr = scratchpad_attr();
    attr.set_post_ops(po);
    dnnl::inner_product_forward::desc d(dnnl::prop_kind::forward_inference, src_md,
                                        memory::desc({n, k}, DataType::f32, Tag::any),
                                        bias != nullptr ? b_md : memory::desc(),
                                        memory::desc({m, n}, DataType::f32, Tag::ab));
    pd.emplace(d, attr, cpu_engine());
  } catch (const dnnl::error&) {
    return false;
  }
  if (next) absorbed.insert(next->second);
  Step s;
  s.prim = dnnl::inner_product_forward(*pd);
  bind_plain(s, DNNL_ARG_SRC, x, src_md);
  bind_weights(s, w_name, w, w_plain, pd->weights_desc(), bias, b_md);
  if (result != out) {
    const ir::Node& n0 = graph.nodes[current_node];
    s.name = (n0.name.empty() ? n0.outputs[0] : n0.name) + "+activation";
  }
  const int dst = emit_output(s, result, pd->dst_desc());
  define(result, plain_desc(y_sizes), dst);
  return true;
}

// Gemm with constant weights, Y = A B' + C (alpha, beta 1; C a row of biases or absent): a
// classifier.
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
  return inner_product(n.inputs[0], x[0], k, n.inputs[1], *w, w_plain, c, n.outputs[0], {x[0], m}, "", {});
}

// graft.FusedMatMul: X (rank >= 2, its leading axes flattened) times a constant [k, n] matrix,
// plus a row, then its activation.
bool Program::Impl::matmul(size_t index) {
  const ir::Node& n = graph.nodes[index];
  if (n.inputs.size() < 2 || !is_f32(n.inputs[0]) || initializer(n.inputs[0]) != nullptr) return false;
  const at::Tensor* w = initializer(n.inputs[1]);
  if (w == nullptr || w->scalar_type() != at::kFloat || w->dim() != 2) return false;
  const std::vector<int64_t>& x = values.at(n.inputs[0]).info.sizes;
  const int64_t k = w->size(0), cols = w->size(1);
  if (x.size() < 2 || x.back() != k) return false;
  const at::Tensor* b = nullptr;
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    b = initializer(n.inputs[2]);
    if (b == nullptr || b->scalar_type() != at::kFloat || b->numel() != cols) return false;
  }
  const int64_t rows = std::accumulate(x.begin(), x.end() - 1, int64_t{1}, std::multiplies<>());
  std::vector<int64_t> y = x;
  y.back() = cols;
  const std::string act = n.attributes.get_string("activation", "");
  const std::vector<float> params = n.attributes.get_floats("activation_params", {});
  return inner_product(n.inputs[0], rows, k, n.inputs[1], *w, memory::desc({cols, k}, DataType::f32, Tag::io), b,
                       n.outputs[0], y, act, params);
}

}  // namespace graft::exec::onednn

// BatchNormalization folding. In inference BN is the per-channel affine map
//   y = (x - mean) * s + beta,  s = gamma / sqrt(var + eps),
// so after a Conv (x = W * input + b) it folds into the weights: W' = W * s (per output
// channel), b' = (b - mean) * s + beta; after a Gemm with a per-column bias likewise on the
// columns of B. The new weights are new initializers (the old ones may be shared).
//
// A BN that follows no Conv but is read only by a Conv (no group, no padding: a padded border
// would be zeros of the normalised input, not of the raw one) folds into that Conv instead:
// W' = W * s (per input channel), b' = b + sum over inputs and window of W * (beta - mean * s).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "graft/exec/passes/passes.h"
#include "graft/exec/passes/rewrite.h"

namespace graft::exec::passes {
namespace {

bool is_vector(const at::Tensor* t, int64_t n) {
  return t != nullptr && t->is_floating_point() && t->dim() == 1 && t->size(0) == n;
}

// Per-channel scale s and shift t of BN node `bn` over `channels` channels (double), or false.
bool affine(const ir::Graph& g, const ir::Node& bn, int64_t channels, at::Tensor* s, at::Tensor* t) {
  const at::Tensor* gamma = constant(g, bn.inputs[1]);
  const at::Tensor* beta = constant(g, bn.inputs[2]);
  const at::Tensor* mean = constant(g, bn.inputs[3]);
  const at::Tensor* var = constant(g, bn.inputs[4]);
  if (!is_vector(gamma, channels) || !is_vector(beta, channels) || !is_vector(mean, channels) ||
      !is_vector(var, channels)) {
    return false;
  }
  const double eps = bn.attributes.get_float("epsilon", 1e-5f);
  *s = gamma->to(at::kDouble) / (var->to(at::kDouble) + eps).sqrt();
  *t = beta->to(at::kDouble) - mean->to(at::kDouble) * *s;
  return true;
}

// BN node `i` folded into the unpadded, ungrouped Conv that is its output's only reader.
int fold_into_next(ir::Graph& g, const std::set<std::string>& protect, size_t i, std::vector<bool>* dead) {
  const ir::Node& bn = g.nodes[i];
  const std::string& y = bn.outputs[0];
  const int r = sole_consumer(g, y);
  if (r < 0 || protect.count(y) || (*dead)[static_cast<size_t>(r)]) return 0;
  ir::Node& c = g.nodes[static_cast<size_t>(r)];
  if (!c.domain.empty() || c.op_type != "Conv" || c.inputs.size() < 2 || c.inputs[0] != y) return 0;
  if (c.attributes.get_int("group", 1) != 1) return 0;
  const std::string auto_pad = c.attributes.get_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID") return 0;
  for (int64_t p : c.attributes.get_ints("pads", {})) {
    if (p != 0) return 0;
  }
  const at::Tensor* w = constant(g, c.inputs[1]);
  if (w == nullptr || !w->is_floating_point() || w->dim() < 3) return 0;
  const int64_t channels = w->size(1);
  at::Tensor s, t;
  if (!affine(g, bn, channels, &s, &t)) return 0;
  const at::Tensor* b = c.inputs.size() > 2 && !c.inputs[2].empty() ? constant(g, c.inputs[2]) : nullptr;
  if (c.inputs.size() > 2 && !c.inputs[2].empty() && !is_vector(b, w->size(0))) return 0;
  std::vector<int64_t> view(static_cast<size_t>(w->dim()), 1);
  view[1] = channels;
  const at::Tensor wd = w->to(at::kDouble);
  const at::Tensor w2 = wd * s.reshape(view);
  std::vector<int64_t> reduce;
  for (int64_t d = 1; d < w->dim(); ++d) reduce.push_back(d);
  at::Tensor b2 = (wd * t.reshape(view)).sum(reduce);
  if (b != nullptr) b2 = b2 + b->to(at::kDouble);
  const std::string name = c.name.empty() ? c.outputs[0] : c.name;
  const std::string w_name = add_initializer(g, name + "/prefolded_W", w2.to(w->scalar_type()));
  const std::string b_name = add_initializer(g, name + "/prefolded_B", b2.to(w->scalar_type()));
  c.inputs.resize(3);
  c.inputs[0] = bn.inputs[0];
  c.inputs[1] = w_name;
  c.inputs[2] = b_name;
  (*dead)[i] = true;
  return 1;
}

}  // namespace

int fold_batchnorm(ir::Graph& g, const std::set<std::string>& protect) {
  c10::InferenceMode guard;
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node bn = g.nodes[i];
    if (!bn.domain.empty() || bn.op_type != "BatchNormalization" || bn.inputs.size() < 5) continue;
    if (bn.attributes.get_int("training_mode", 0) != 0) continue;
    bool extra_outputs = false;
    for (size_t k = 1; k < bn.outputs.size(); ++k) extra_outputs = extra_outputs || !bn.outputs[k].empty();
    if (extra_outputs || bn.inputs[0].empty()) continue;
    const std::string x = bn.inputs[0];
    const ir::Value& xv = g.value(x);
    if (xv.producer < 0 || protect.count(x) || sole_consumer(g, x) != static_cast<int>(i)) {
      folded += fold_into_next(g, protect, i, &dead);
      continue;
    }
    ir::Node& p = g.nodes[static_cast<size_t>(xv.producer)];
    if (dead[static_cast<size_t>(xv.producer)] || p.outputs.size() != 1) continue;

    const bool conv = p.domain.empty() && p.op_type == "Conv";
    const bool gemm = p.domain.empty() && p.op_type == "Gemm";
    if (!conv && !gemm) {
      folded += fold_into_next(g, protect, i, &dead);
      continue;
    }
    const at::Tensor* w = p.inputs.size() > 1 ? constant(g, p.inputs[1]) : nullptr;
    if (w == nullptr || !w->is_floating_point()) continue;
    const bool trans_b = gemm && p.attributes.get_int("transB", 0) != 0;
    const int64_t channels = conv ? w->size(0) : (w->dim() == 2 ? (trans_b ? w->size(0) : w->size(1)) : -1);
    const at::Tensor* gamma = constant(g, bn.inputs[1]);
    const at::Tensor* beta = constant(g, bn.inputs[2]);
    const at::Tensor* mean = constant(g, bn.inputs[3]);
    const at::Tensor* var = constant(g, bn.inputs[4]);
    if (channels <= 0 || !is_vector(gamma, channels) || !is_vector(beta, channels) || !is_vector(mean, channels) ||
        !is_vector(var, channels)) {
      continue;
    }
    const at::Tensor* b = p.inputs.size() > 2 && !p.inputs[2].empty() ? constant(g, p.inputs[2]) : nullptr;
    if (p.inputs.size() > 2 && !p.inputs[2].empty() && b == nullptr) continue;
    if (b != nullptr && !(is_vector(b, channels) || (gemm && b->dim() == 2 && b->size(0) == 1 && b->size(1) == channels))) {
      continue;
    }
    double alpha = 1, beta_gemm = 1;
    if (gemm) {
      alpha = p.attributes.get_float("alpha", 1.0f);
      beta_gemm = p.attributes.get_float("beta", 1.0f);
    }
    const double eps = bn.attributes.get_float("epsilon", 1e-5f);
    // Fold in double, then back to the weights' type.
    const at::Tensor s = gamma->to(at::kDouble) / (var->to(at::kDouble) + eps).sqrt();
    at::Tensor w2;
    if (conv) {
      std::vector<int64_t> view(static_cast<size_t>(w->dim()), 1);
      view[0] = channels;
      w2 = w->to(at::kDouble) * s.reshape(view);
    } else {
      w2 = w->to(at::kDouble) * alpha * (trans_b ? s.reshape({channels, 1}) : s.reshape({1, channels}));
    }
    at::Tensor b0 = b ? b->to(at::kDouble).reshape({channels}) * beta_gemm : at::zeros({channels}, at::kDouble);
    const at::Tensor b2 = (b0 - mean->to(at::kDouble)) * s + beta->to(at::kDouble);

    const std::string w_name = add_initializer(g, p.name + "/folded_W", w2.to(w->scalar_type()));
    const std::string b_name = add_initializer(g, p.name + "/folded_B", b2.to(w->scalar_type()));
    p.inputs.resize(3);
    p.inputs[1] = w_name;
    p.inputs[2] = b_name;
    if (gemm) {
      p.attributes.set(ir::Attribute::of_float("alpha", 1.0f));
      p.attributes.set(ir::Attribute::of_float("beta", 1.0f));
    }
    p.outputs[0] = bn.outputs[0];
    dead[i] = true;
    ++folded;
  }
  if (folded) erase_nodes(g, dead);
  return folded;
}

}  // namespace graft::exec::passes

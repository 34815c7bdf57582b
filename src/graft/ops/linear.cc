// Gemm, MatMul and graft.FusedMatMul.
#include <ATen/ATen.h>

#include "graft/ops/kernel.h"

namespace graft::ops {

void register_linear(Registry& r) {
  r.add("Gemm", [](const NodeContext& ctx) -> Kernel {
    const auto& a = ctx.node.attributes;
    const double alpha = a.get_float("alpha", 1.0f), beta = a.get_float("beta", 1.0f);
    const bool ta = a.get_int("transA", 0) != 0, tb = a.get_int("transB", 0) != 0;
    return [=](const std::vector<at::Tensor>& in, const RunContext&) {
      at::Tensor A = ta ? in[0].t() : in[0];
      at::Tensor B = tb ? in[1].t() : in[1];
      const bool has_c = in.size() > 2 && in[2].defined();
      if (has_c && alpha == 1.0 && beta == 1.0 && A.is_floating_point()) {
        return std::vector<at::Tensor>{at::addmm(in[2], A, B)};
      }
      at::Tensor y = at::matmul(A, B);
      if (alpha != 1.0) y = y * alpha;
      if (has_c) y = y + (beta == 1.0 ? in[2] : in[2] * beta);
      return std::vector<at::Tensor>{y.to(in[0].scalar_type())};
    };
  });
  // graft.FusedMatMul (graft/exec/passes/passes.h): Y = activation(X W + B), W 2-D, B a row.
  r.add("graft.FusedMatMul", [](const NodeContext& ctx) -> Kernel {
    const std::string act = ctx.node.attributes.get_string("activation", "");
    const std::vector<float> p = ctx.node.attributes.get_floats("activation_params");
    check_fused_activation(ctx, act, p);
    return [act, p](const std::vector<at::Tensor>& in, const RunContext&) {
      at::Tensor y = at::matmul(in[0], in[1]);
      if (in.size() > 2 && in[2].defined()) y.add_(in[2]);
      apply_fused_activation(y, act, p);
      return std::vector<at::Tensor>{y};
    };
  });
  r.add("MatMul", [](const NodeContext&) -> Kernel {
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::matmul(in[0], in[1])};
    };
  });
}

}  // namespace graft::ops

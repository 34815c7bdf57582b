// ReduceMean (axes as an attribute, opsets 7–17).
#include <ATen/ATen.h>

#include "graft/ops/kernel.h"

namespace graft::ops {

void register_reduce(Registry& r) {
  r.add("ReduceMean", [](const NodeContext& ctx) -> Kernel {
    const auto axes = ctx.node.attributes.get_ints("axes");
    const bool keepdims = ctx.node.attributes.get_int("keepdims", 1) != 0;
    return [axes, keepdims](const std::vector<at::Tensor>& in, const RunContext&) {
      const at::Tensor& x = in[0];
      std::vector<int64_t> dims = axes;
      if (dims.empty()) {
        for (int64_t i = 0; i < x.dim(); ++i) dims.push_back(i);
      }
      at::Tensor y = x.is_floating_point() ? at::mean(x, dims, keepdims)
                                           : at::mean(x.to(at::kDouble), dims, keepdims).to(x.scalar_type());
      return std::vector<at::Tensor>{y};
    };
  });
}

}  // namespace graft::ops

// Activations: Relu, ThresholdedRelu, LeakyRelu, PRelu, Elu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf,
// Softmax, LogSoftmax.
#include <ATen/ATen.h>

#include <limits>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

Kernel unary(at::Tensor (*fn)(const at::Tensor&)) {
  return [fn](const std::vector<at::Tensor>& in, const RunContext&) {
    return std::vector<at::Tensor>{fn(in[0])};
  };
}

Kernel make_clip(const NodeContext& ctx) {
  if (ctx.opset < 11) {  // bounds are attributes before opset 11
    const float lo = ctx.node.attributes.get_float("min", -std::numeric_limits<float>::infinity());
    const float hi = ctx.node.attributes.get_float("max", std::numeric_limits<float>::infinity());
    return [lo, hi](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::clamp(in[0], lo, hi)};
    };
  }
  return [](const std::vector<at::Tensor>& in, const RunContext&) {
    at::Tensor y = in[0];
    if (in.size() > 1 && in[1].defined()) y = at::clamp_min(y, in[1].to(y.scalar_type()));
    if (in.size() > 2 && in[2].defined()) y = at::clamp_max(y, in[2].to(y.scalar_type()));
    return std::vector<at::Tensor>{y};
  };
}

// Before opset 13, (Log)Softmax flattens to 2-D at `axis` (default 1) and normalises rows;
// from 13 on it normalises along `axis` (default -1).
Kernel make_softmax(const NodeContext& ctx, bool log) {
  const bool coerce = ctx.opset < 13;
  const int64_t axis = ctx.node.attributes.get_int("axis", coerce ? 1 : -1);
  return [coerce, axis, log](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const int64_t rank = x.dim();
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a > rank || (!coerce && a == rank)) {
      throw std::out_of_range("softmax axis out of range");
    }
    if (!coerce) {
      return std::vector<at::Tensor>{log ? at::log_softmax(x, a) : at::softmax(x, a)};
    }
    int64_t rows = 1;
    for (int64_t i = 0; i < a; ++i) rows *= x.size(i);
    at::Tensor flat = x.reshape({rows, -1});
    at::Tensor y = log ? at::log_softmax(flat, 1) : at::softmax(flat, 1);
    return std::vector<at::Tensor>{y.reshape(x.sizes())};
  };
}

}  // namespace

void register_activation(Registry& r) {
  r.add("Relu", [](const NodeContext&) { return unary(at::relu); });
  r.add("Sigmoid", [](const NodeContext&) { return unary(at::sigmoid); });
  r.add("Tanh", [](const NodeContext&) { return unary(at::tanh); });
  r.add("Erf", [](const NodeContext&) { return unary(at::erf); });
  r.add("LeakyRelu", [](const NodeContext& ctx) -> Kernel {
    const double alpha = ctx.node.attributes.get_float("alpha", 0.01f);
    return [alpha](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::leaky_relu(in[0], alpha)};
    };
  });
  r.add("ThresholdedRelu", [](const NodeContext& ctx) -> Kernel {
    const double alpha = ctx.node.attributes.get_float("alpha", 1.0f);
    return [alpha](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::where(in[0] > alpha, in[0], at::zeros_like(in[0]))};
    };
  });
  r.add("Elu", [](const NodeContext& ctx) -> Kernel {
    const double alpha = ctx.node.attributes.get_float("alpha", 1.0f);
    return [alpha](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::elu(in[0], alpha)};
    };
  });
  r.add("PRelu", [](const NodeContext&) -> Kernel {
    // slope broadcasts to x (unidirectionally), which at::prelu does not allow in general.
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      const at::Tensor& x = in[0];
      return std::vector<at::Tensor>{at::where(x < 0, x * in[1], x)};
    };
  });
  r.add("Clip", make_clip);
  r.add("HardSigmoid", [](const NodeContext& ctx) -> Kernel {
    const double alpha = ctx.node.attributes.get_float("alpha", 0.2f);
    const double beta = ctx.node.attributes.get_float("beta", 0.5f);
    return [alpha, beta](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::clamp(in[0] * alpha + beta, 0.0, 1.0)};
    };
  });
  r.add("HardSwish", [](const NodeContext&) -> Kernel {
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::hardswish(in[0])};
    };
  });
  r.add("Softmax", [](const NodeContext& ctx) { return make_softmax(ctx, false); });
  r.add("LogSoftmax", [](const NodeContext& ctx) { return make_softmax(ctx, true); });
}

}  // namespace graft::ops

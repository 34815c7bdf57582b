// Activations: Relu, ThresholdedRelu, LeakyRelu, PRelu, Elu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf,
// Softmax, LogSoftmax; graft.Silu and graft.Gelu (what the graph passes make of the decomposed
// x * sigmoid(x) and GELU patterns); and the fused activations of graft's fused nodes.
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

int fused_activation_params(const std::string& a) {
  if (a.empty() || a == "Relu" || a == "Sigmoid" || a == "Tanh" || a == "HardSwish" || a == "Silu" ||
      a == "Gelu" || a == "GeluTanh") {
    return 0;
  }
  if (a == "LeakyRelu") return 1;
  if (a == "Clip" || a == "HardSigmoid") return 2;
  return -1;
}

void check_fused_activation(const NodeContext& ctx, const std::string& a, const std::vector<float>& p) {
  const int want = fused_activation_params(a);
  if (want < 0) ctx.fail("unknown fused activation '" + a + "'");
  if (p.size() != static_cast<size_t>(want)) {
    ctx.fail("activation " + a + " needs " + std::to_string(want) + " activation_params");
  }
}

void apply_fused_activation(at::Tensor& y, const std::string& a, const std::vector<float>& p) {
  if (a == "Relu") {
    y.relu_();
  } else if (a == "Clip") {
    y.clamp_(p[0], p[1]);
  } else if (a == "LeakyRelu") {
    at::leaky_relu_(y, p[0]);
  } else if (a == "Sigmoid") {
    y.sigmoid_();
  } else if (a == "Tanh") {
    y.tanh_();
  } else if (a == "HardSigmoid") {
    y.mul_(p[0]).add_(p[1]).clamp_(0, 1);
  } else if (a == "HardSwish") {
    at::hardswish_(y);
  } else if (a == "Silu") {
    at::silu_(y);
  } else if (a == "Gelu" || a == "GeluTanh") {
    y = at::gelu(y, a == "Gelu" ? "none" : "tanh");
  }
}

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
  r.add("graft.Silu", [](const NodeContext&) { return unary(at::silu); });
  r.add("graft.Gelu", [](const NodeContext& ctx) -> Kernel {
    const std::string approximate = ctx.node.attributes.get_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh") {
      ctx.fail("approximate must be 'none' or 'tanh', not '" + approximate + "'");
    }
    return [approximate](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::gelu(in[0], approximate)};
    };
  });
  r.add("Softmax", [](const NodeContext& ctx) { return make_softmax(ctx, false); });
  r.add("LogSoftmax", [](const NodeContext& ctx) { return make_softmax(ctx, true); });
}

}  // namespace graft::ops

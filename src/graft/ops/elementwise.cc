// Broadcasting arithmetic: Add, Sub, Mul, Div, Pow, Sqrt, and the variadic Max, Min, Sum, Mean
// (numpy-style broadcasting, opset 7+).
#include <ATen/ATen.h>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

Kernel binary(at::Tensor (*fn)(const at::Tensor&, const at::Tensor&)) {
  return [fn](const std::vector<at::Tensor>& in, const RunContext&) {
    return std::vector<at::Tensor>{fn(in[0], in[1])};
  };
}

at::Tensor add(const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }
at::Tensor sub(const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }
at::Tensor mul(const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }

// Integer division truncates toward zero, as in C (ONNX's reference does the same).
at::Tensor div(const at::Tensor& a, const at::Tensor& b) {
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false)) {
    return at::div(a, b, "trunc").to(a.scalar_type());
  }
  return at::div(a, b);
}

// The result has the base's type, whatever the exponent's.
at::Tensor pow(const at::Tensor& a, const at::Tensor& b) {
  if (at::isIntegralType(a.scalar_type(), false) && b.is_floating_point()) {
    return at::pow(a.to(at::kDouble), b.to(at::kDouble)).to(a.scalar_type());
  }
  return at::pow(a, b).to(a.scalar_type());
}

// Max, Min, Sum, Mean: any number of inputs (at least one), folded pairwise.
Kernel variadic(at::Tensor (*fn)(const at::Tensor&, const at::Tensor&), bool mean) {
  return [fn, mean](const std::vector<at::Tensor>& in, const RunContext&) {
    at::Tensor y = in.at(0);
    for (size_t i = 1; i < in.size(); ++i) y = fn(y, in[i]);
    if (mean) y = y / static_cast<double>(in.size());
    return std::vector<at::Tensor>{y};
  };
}

at::Tensor maximum(const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }
at::Tensor minimum(const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }

}  // namespace

void register_elementwise(Registry& r) {
  r.add("Add", [](const NodeContext&) { return binary(add); });
  r.add("Sub", [](const NodeContext&) { return binary(sub); });
  r.add("Mul", [](const NodeContext&) { return binary(mul); });
  r.add("Div", [](const NodeContext&) { return binary(div); });
  r.add("Pow", [](const NodeContext&) { return binary(pow); });
  r.add("Max", [](const NodeContext&) { return variadic(maximum, false); });
  r.add("Min", [](const NodeContext&) { return variadic(minimum, false); });
  r.add("Sum", [](const NodeContext&) { return variadic(add, false); });
  r.add("Mean", [](const NodeContext&) { return variadic(add, true); });
  r.add("Sqrt", [](const NodeContext&) -> Kernel {
    return [](const std::vector<at::Tensor>& in, const RunContext&) {
      return std::vector<at::Tensor>{at::sqrt(in[0])};
    };
  });
}

}  // namespace graft::ops

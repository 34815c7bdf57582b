#include <ATen/ATen.h>

#include <algorithm>

#include "graft/core/error.h"
#include "graft/ops/kernel.h"

namespace graft::ops {

void NodeContext::fail(const std::string& message) const {
  throw Error(where() + ": " + message);
}

const Registry& Registry::instance() {
  static const Registry registry = [] {
    Registry r;
    register_activation(r);
    register_conv(r);
    register_elementwise(r);
    register_linear(r);
    register_norm(r);
    register_pad(r);
    register_pool(r);
    register_reduce(r);
    register_resize(r);
    register_shape(r);
    return r;
  }();
  return registry;
}

void Registry::add(const std::string& op_type, KernelFactory factory) {
  factories_[op_type] = std::move(factory);
}

const KernelFactory* Registry::find(const std::string& domain, const std::string& op_type) const {
  // graft's own ops (domain "graft") are registered as "graft.OP".
  if (!domain.empty() && domain != "ai.onnx" && domain != "graft") return nullptr;
  auto it = factories_.find(domain == "graft" ? "graft." + op_type : op_type);
  return it == factories_.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::op_types() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : factories_) out.push_back(name);
  return out;
}

std::vector<int64_t> to_int64_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous().reshape({-1});
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

std::pair<int64_t, int64_t> same_pads(int64_t size, int64_t extent, int64_t stride, bool upper) {
  const int64_t out = (size + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + extent - size, 0);
  const int64_t begin = upper ? total / 2 : total - total / 2;
  return {begin, total - begin};
}

std::vector<int64_t> torch_pads(const std::vector<int64_t>& begin, const std::vector<int64_t>& end) {
  std::vector<int64_t> out;
  for (size_t i = begin.size(); i-- > 0;) {
    out.push_back(begin[i]);
    out.push_back(end[i]);
  }
  return out;
}

at::ScalarType scalar_type_of(ir::DType dtype, const NodeContext& ctx) {
  switch (dtype) {
    case 1: return at::kFloat;
    case 2: return at::kByte;
    case 3: return at::kChar;
    case 5: return at::kShort;
    case 6: return at::kInt;
    case 7: return at::kLong;
    case 9: return at::kBool;
    case 10: return at::kHalf;
    case 11: return at::kDouble;
    case 16: return at::kBFloat16;
    default: ctx.fail("data type " + ir::dtype_name(dtype) + " is not supported by graft");
  }
}

}  // namespace graft::ops

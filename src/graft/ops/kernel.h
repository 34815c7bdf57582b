// graft::ops — CPU kernels for ONNX operators, on ATen.
//
// A kernel is made once per node by its op's factory, which reads the node's attributes (and
// constant inputs) and validates them; running it is then just the ATen calls. Each op family
// lives in its own file and registers its factories by op type. Kernels support the ONNX
// opsets 7–17 of their op, including the attribute-vs-input variants across versions.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::ops {

// What a factory may look at when it makes a node's kernel.
struct NodeContext {
  const ir::Node& node;
  int64_t opset = 0;                 // version of the node's domain
  std::vector<at::Tensor> constants; // per input: its value if it is an initializer, else undefined
  // Declared/inferred input shapes, per input (may be unknown).
  std::vector<std::optional<ir::Shape>> input_shapes;

  std::string where() const { return node.describe(); }
  // Error naming the node.
  [[noreturn]] void fail(const std::string& message) const;
};

// Per-run state a kernel may consult.
struct RunContext {
  bool training = false;  // the node runs in training mode (BatchNormalization, Dropout)
  // Data-parallel training: a differentiable sum of a tensor over the replicas (all ranks).
  // BatchNormalization in training mode then uses statistics of the global batch (SyncBatchNorm).
  const std::function<at::Tensor(const at::Tensor&)>* replica_sum = nullptr;
};

// Inputs: one tensor per node input; an omitted optional input is an undefined tensor.
using Kernel = std::function<std::vector<at::Tensor>(const std::vector<at::Tensor>& inputs,
                                                      const RunContext& run)>;
using KernelFactory = std::function<Kernel(const NodeContext&)>;

class Registry {
 public:
  // The registry with every graft op family registered.
  static const Registry& instance();

  void add(const std::string& op_type, KernelFactory factory);
  // nullptr when graft has no kernel for the op (the default ONNX domain and graft's own
  // "graft" domain, whose ops are registered as "graft.OP", are served).
  const KernelFactory* find(const std::string& domain, const std::string& op_type) const;
  std::vector<std::string> op_types() const;

 private:
  std::map<std::string, KernelFactory> factories_;
};

// Helpers shared by the op families.
std::vector<int64_t> to_int64_vector(const at::Tensor& t);
// ATen's pad list (last axis first, begin then end) for per-axis begin and end pads.
std::vector<int64_t> torch_pads(const std::vector<int64_t>& begin, const std::vector<int64_t>& end);
// Begin and end padding of one spatial axis under auto_pad SAME_UPPER (`upper`) or SAME_LOWER:
// the output has ceil(size / stride) positions; `extent` is the dilated kernel's span.
std::pair<int64_t, int64_t> same_pads(int64_t size, int64_t extent, int64_t stride, bool upper);
at::ScalarType scalar_type_of(ir::DType dtype, const NodeContext& ctx);

// The activations graft's fused nodes (graft.FusedConv, graft.FusedMatMul) apply to their
// result: Relu, LeakyRelu (alpha), Clip (min, max), Sigmoid, Tanh, HardSigmoid (alpha, beta),
// HardSwish, Silu (x * sigmoid(x)), Gelu (erf form), GeluTanh (tanh approximation). How many
// activation_params `activation` takes, or -1 when graft does not know it ("" takes none).
int fused_activation_params(const std::string& activation);
// Applies `activation` with `params` to `y` in place (y a fresh result).
void apply_fused_activation(at::Tensor& y, const std::string& activation, const std::vector<float>& params);
// Fails (naming the node) unless the node's activation and activation_params are known.
void check_fused_activation(const NodeContext& ctx, const std::string& activation, const std::vector<float>& params);

// One registration function per op family file.
void register_activation(Registry& r);
void register_conv(Registry& r);
void register_elementwise(Registry& r);
void register_linear(Registry& r);
void register_norm(Registry& r);
void register_pad(Registry& r);
void register_pool(Registry& r);
void register_reduce(Registry& r);
void register_resize(Registry& r);
void register_shape(Registry& r);

}  // namespace graft::ops

// BatchNormalization.
//
// Inference uses the running statistics. When graft trains a node (RunContext::training) it
// normalises with batch statistics and updates the running mean and variance tensors in place,
// as Keras and PyTorch do. A model whose node says training_mode=1 (opset 14+) gets ONNX's
// semantics instead: the updated statistics are outputs, the inputs stay untouched.
#include <ATen/ATen.h>

#include "graft/ops/kernel.h"

namespace graft::ops {
namespace {

Kernel make_batch_norm(const NodeContext& ctx) {
  const auto& a = ctx.node.attributes;
  const double eps = a.get_float("epsilon", 1e-5f);
  const double momentum = a.get_float("momentum", 0.9f);  // ONNX: running = running*m + batch*(1-m)
  if (ctx.opset < 9 && a.get_int("spatial", 1) == 0) {
    ctx.fail("BatchNormalization with spatial=0 is not supported");
  }
  const bool onnx_training = ctx.opset >= 14 && a.get_int("training_mode", 0) != 0;
  return [=](const std::vector<at::Tensor>& in, const RunContext& run) {
    const at::Tensor &x = in[0], &scale = in[1], &bias = in[2], &mean = in[3], &var = in[4];
    if (onnx_training) {
      std::vector<int64_t> dims{0};
      for (int64_t i = 2; i < x.dim(); ++i) dims.push_back(i);
      at::Tensor batch_mean = at::mean(x, dims);
      at::Tensor batch_var = at::var(x, dims, /*unbiased=*/false);
      std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
      shape[1] = -1;
      at::Tensor y = (x - batch_mean.reshape(shape)) / at::sqrt(batch_var.reshape(shape) + eps) *
                         scale.reshape(shape) + bias.reshape(shape);
      return std::vector<at::Tensor>{y, mean * momentum + batch_mean * (1 - momentum),
                                     var * momentum + batch_var * (1 - momentum)};
    }
    // ATen's momentum weighs the new batch: 1 - ONNX's.
    return std::vector<at::Tensor>{at::batch_norm(x, scale, bias, mean, var, run.training,
                                                  1.0 - momentum, eps, /*cudnn_enabled=*/false)};
  };
}

}  // namespace

void register_norm(Registry& r) { r.add("BatchNormalization", make_batch_norm); }

}  // namespace graft::ops

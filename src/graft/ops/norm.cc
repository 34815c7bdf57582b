// BatchNormalization and LayerNormalization (opset 17; what PyTorch exports ConvNeXt's
// LayerNorm as).
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
    if (run.training && run.replica_sum != nullptr) {
      // Statistics over every replica's batch, differentiable through the sums (their gradients
      // are summed over the replicas in backward), as SyncBatchNorm computes them.
      std::vector<int64_t> dims{0};
      for (int64_t i = 2; i < x.dim(); ++i) dims.push_back(i);
      std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
      shape[1] = -1;
      const int64_t c = x.size(1);
      const double local = static_cast<double>(x.numel() / std::max<int64_t>(c, 1));
      // One sum for the channels' totals and the global count.
      const at::Tensor sums = (*run.replica_sum)(at::cat({x.sum(dims), at::full({1}, local, x.options())}));
      const at::Tensor n = sums.slice(0, c, c + 1).detach();
      const at::Tensor batch_mean = sums.slice(0, 0, c) / n;
      const at::Tensor centered = x - batch_mean.reshape(shape);
      const at::Tensor batch_var = (*run.replica_sum)((centered * centered).sum(dims)) / n;
      {
        at::NoGradGuard no_grad;
        const double total = n.item<double>();
        const double m = 1.0 - momentum;  // weight of the new batch
        mean.mul_(1 - m).add_(batch_mean.detach() * m);
        var.mul_(1 - m).add_(batch_var.detach() * (total / std::max(total - 1, 1.0)) * m);
      }
      return std::vector<at::Tensor>{centered / at::sqrt(batch_var.reshape(shape) + eps) * scale.reshape(shape) +
                                     bias.reshape(shape)};
    }
    // ATen's momentum weighs the new batch: 1 - ONNX's.
    return std::vector<at::Tensor>{at::batch_norm(x, scale, bias, mean, var, run.training,
                                                  1.0 - momentum, eps, /*cudnn_enabled=*/false)};
  };
}

Kernel make_layer_norm(const NodeContext& ctx) {
  const int64_t axis_attr = ctx.node.attributes.get_int("axis", -1);
  const double eps = ctx.node.attributes.get_float("epsilon", 1e-5f);
  const size_t outputs = ctx.node.outputs.size();
  return [=](const std::vector<at::Tensor>& in, const RunContext&) {
    const at::Tensor& x = in[0];
    const int64_t axis = axis_attr < 0 ? axis_attr + x.dim() : axis_attr;
    if (axis < 0 || axis >= x.dim()) throw std::out_of_range("LayerNormalization axis out of range");
    std::vector<int64_t> normalized(x.sizes().begin() + axis, x.sizes().end());
    const at::Tensor bias = in.size() > 2 && in[2].defined() ? in[2] : at::Tensor();
    if (outputs <= 1) {
      // Scale and bias broadcast over the normalised axes; ATen wants them at full size.
      return std::vector<at::Tensor>{at::layer_norm(x, normalized, in[1].expand(normalized),
                                                    bias.defined() ? bias.expand(normalized) : bias,
                                                    eps)};
    }
    std::vector<int64_t> dims;
    for (int64_t d = axis; d < x.dim(); ++d) dims.push_back(d);
    at::Tensor mean = at::mean(x, dims, /*keepdim=*/true);
    at::Tensor inv_std = at::rsqrt(at::var(x, dims, /*unbiased=*/false, /*keepdim=*/true) + eps);
    at::Tensor y = (x - mean) * inv_std * in[1];
    if (bias.defined()) y = y + bias;
    return std::vector<at::Tensor>{y, mean, inv_std};
  };
}

}  // namespace

void register_norm(Registry& r) {
  r.add("BatchNormalization", make_batch_norm);
  r.add("LayerNormalization", make_layer_norm);
}

}  // namespace graft::ops

// Training losses: cross-entropy on labels, feature matching against the server model's own
// activation, and distillation from the server model's logits; and weighted sums of them.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace graft::train {

// Mean cross-entropy of logits (B, K) against labels (B).
at::Tensor ce_loss(const at::Tensor& logits, const at::Tensor& labels);
// Mean squared error between the adapter's output and the server's activation.
at::Tensor feature_loss(const at::Tensor& adapter_out, const at::Tensor& server_activation);
// KL(softmax(teacher / T) || softmax(student / T)) averaged over the batch, times T^2 (so its
// gradients keep their scale as T changes).
at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits, double temperature);

// "ce", "feature", "kd" or a weighted sum "ce:1,feature:0.5,kd:2" -> name -> weight. Error for an
// unknown name or a bad weight.
std::map<std::string, double> parse_loss(const std::string& spec);

}  // namespace graft::train

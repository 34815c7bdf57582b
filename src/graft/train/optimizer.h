// Optimisers and learning-rate schedules for graft's trainer, on plain ATen tensors so that
// their state can be checkpointed with the model.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

namespace graft::train {

struct OptimizerOptions {
  std::string kind = "sgd";  // sgd, adam, adamw
  double lr = 0.05;
  double momentum = 0.9;     // sgd
  bool nesterov = false;     // sgd
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  double weight_decay = 0;   // L2 for sgd and adam, decoupled for adamw
  double clip_norm = 0;      // clip the global gradient norm to this (0: off)
};

class Optimizer {
 public:
  // `params` are named leaf tensors that require grad.
  Optimizer(std::map<std::string, at::Tensor> params, OptimizerOptions options);

  // One update with learning rate `lr` (the schedule's); returns the gradient norm before
  // clipping. Gradients are zeroed afterwards.
  double step(double lr);

  // State for checkpoints: "<param>/<slot>" -> tensor, plus the step count.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);
  int64_t steps() const { return steps_; }

 private:
  std::map<std::string, at::Tensor> params_;
  OptimizerOptions o_;
  std::map<std::string, at::Tensor> slot1_, slot2_;  // momentum / exp_avg, exp_avg_sq
  int64_t steps_ = 0;
};

// Cosine decay to 0 after a linear warm-up of `warmup` steps; step counts from 0.
double cosine_lr(double base, int64_t step, int64_t total, int64_t warmup);

}  // namespace graft::train

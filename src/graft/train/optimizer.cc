#include "graft/train/optimizer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "graft/core/error.h"

namespace graft::train {

Optimizer::Optimizer(std::map<std::string, at::Tensor> params, OptimizerOptions options)
    : params_(std::move(params)), o_(std::move(options)) {
  if (o_.kind != "sgd" && o_.kind != "adam" && o_.kind != "adamw") {
    throw Error("unknown optimiser '" + o_.kind + "' (sgd, adam, adamw)");
  }
  if (!(o_.lr > 0)) throw Error("the learning rate must be positive");
  for (const auto& [name, p] : params_) {
    slot1_[name] = at::zeros_like(p.detach());
    if (o_.kind != "sgd") slot2_[name] = at::zeros_like(p.detach());
  }
}

double Optimizer::step(double lr) {
  at::NoGradGuard no_grad;
  double norm_sq = 0;
  for (const auto& [name, p] : params_) {
    if (p.grad().defined()) norm_sq += p.grad().pow(2).sum().item<double>();
  }
  const double norm = std::sqrt(norm_sq);
  const double scale = o_.clip_norm > 0 && norm > o_.clip_norm ? o_.clip_norm / (norm + 1e-12) : 1.0;
  ++steps_;
  for (auto& [name, p] : params_) {
    if (!p.grad().defined()) continue;
    at::Tensor g = p.grad() * scale;
    at::Tensor param = p;  // shares storage: updates are in place
    if (o_.kind == "sgd") {
      if (o_.weight_decay > 0) g = g + param * o_.weight_decay;
      at::Tensor& buf = slot1_[name];
      if (o_.momentum > 0) {
        buf.mul_(o_.momentum).add_(g);
        g = o_.nesterov ? g + buf * o_.momentum : buf;
      }
      param.sub_(g * lr);
    } else {
      if (o_.kind == "adam" && o_.weight_decay > 0) g = g + param * o_.weight_decay;
      if (o_.kind == "adamw" && o_.weight_decay > 0) param.mul_(1 - lr * o_.weight_decay);
      at::Tensor& m = slot1_[name];
      at::Tensor& v = slot2_[name];
      m.mul_(o_.beta1).add_(g * (1 - o_.beta1));
      v.mul_(o_.beta2).add_(g * g * (1 - o_.beta2));
      const double c1 = 1 - std::pow(o_.beta1, static_cast<double>(steps_));
      const double c2 = 1 - std::pow(o_.beta2, static_cast<double>(steps_));
      param.sub_(m / c1 / ((v / c2).sqrt() + o_.eps) * lr);
    }
    p.mutable_grad().zero_();
  }
  return norm;
}

std::map<std::string, at::Tensor> Optimizer::state() const {
  std::map<std::string, at::Tensor> s;
  for (const auto& [name, t] : slot1_) s[name + "/slot1"] = t;
  for (const auto& [name, t] : slot2_) s[name + "/slot2"] = t;
  s["steps"] = at::scalar_tensor(steps_, at::kLong);
  return s;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& s) {
  for (auto& [name, t] : slot1_) {
    auto it = s.find(name + "/slot1");
    if (it == s.end() || !it->second.sizes().equals(t.sizes())) {
      throw Error("the checkpoint's optimiser state does not match parameter '" + name +
                  "' (was it written for another model or optimiser?)");
    }
    t.copy_(it->second);
  }
  for (auto& [name, t] : slot2_) {
    auto it = s.find(name + "/slot2");
    if (it == s.end()) throw Error("the checkpoint has no second moment for '" + name + "' (another optimiser?)");
    t.copy_(it->second);
  }
  auto it = s.find("steps");
  if (it == s.end()) throw Error("the checkpoint has no step count");
  steps_ = it->second.item<int64_t>();
}

double cosine_lr(double base, int64_t step, int64_t total, int64_t warmup) {
  if (warmup > 0 && step < warmup) return base * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double span = static_cast<double>(std::max<int64_t>(total - warmup, 1));
  const double t = std::min(1.0, static_cast<double>(step - warmup) / span);
  return 0.5 * base * (1 + std::cos(M_PI * t));
}

}  // namespace graft::train

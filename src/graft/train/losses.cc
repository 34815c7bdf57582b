#include "graft/train/losses.h"

#include <ATen/ATen.h>

#include <sstream>

#include "graft/core/error.h"

namespace graft::train {

at::Tensor ce_loss(const at::Tensor& logits, const at::Tensor& labels) {
  return at::cross_entropy_loss(logits, labels);
}

at::Tensor feature_loss(const at::Tensor& adapter_out, const at::Tensor& server_activation) {
  return at::mse_loss(adapter_out, server_activation);
}

at::Tensor kd_loss(const at::Tensor& student_logits, const at::Tensor& teacher_logits, double temperature) {
  const at::Tensor log_p_student = at::log_softmax(student_logits / temperature, 1);
  const at::Tensor log_p_teacher = at::log_softmax(teacher_logits / temperature, 1);
  return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(1).mean() * (temperature * temperature);
}

std::map<std::string, double> parse_loss(const std::string& spec) {
  std::map<std::string, double> out;
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    const size_t colon = item.find(':');
    const std::string name = item.substr(0, colon);
    double weight = 1.0;
    if (colon != std::string::npos) {
      try {
        size_t used = 0;
        weight = std::stod(item.substr(colon + 1), &used);
        if (used != item.size() - colon - 1) throw std::invalid_argument("trailing");
      } catch (const std::exception&) {
        throw Error("bad --loss '" + spec + "': weight of '" + name + "' is not a number");
      }
    }
    if (name != "ce" && name != "feature" && name != "kd") {
      throw Error("bad --loss '" + spec + "': unknown loss '" + name + "' (ce, feature, kd; e.g. ce:1,kd:0.5)");
    }
    if (!(weight >= 0)) throw Error("bad --loss '" + spec + "': weights must be non-negative");
    out[name] += weight;
  }
  if (out.empty()) throw Error("empty --loss");
  return out;
}

}  // namespace graft::train

#include "graft/train/evaluate.h"

#include <ATen/ATen.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "graft/core/error.h"

namespace graft::train {

Evaluation evaluate(exec::Session& session, const data::Dataset& d, const data::Preprocess& p, int64_t batch) {
  const auto start = std::chrono::steady_clock::now();
  const ir::Graph& g = session.graph();
  if (g.inputs.size() != 1) throw Error("evaluation needs a model with one input");
  const std::string& output = g.outputs.at(0);
  Evaluation e;
  int64_t classes = -1;
  for (int64_t i = 0; i < d.size(); i += batch) {
    const int64_t n = std::min(batch, d.size() - i);
    at::Tensor x = data::preprocess_batch(d.images.slice(0, i, i + n), p);
    at::Tensor scores = session.run({{g.inputs[0], x}}, {output}).at(output).reshape({n, -1});
    if (classes < 0) {
      classes = scores.size(1);
      data::check_labels(d, classes);
      e.confusion = at::zeros({classes, classes}, at::kLong);
    }
    at::Tensor y = d.labels.slice(0, i, i + n);
    const int64_t k = std::min<int64_t>(5, classes);
    at::Tensor top = std::get<1>(at::topk(scores, k, 1));
    e.top1 += top.select(1, 0).eq(y).sum().item<double>();
    e.top5 += top.eq(y.unsqueeze(1)).any(1).sum().item<double>();
    e.confusion.index_put_({y, top.select(1, 0)}, at::ones({n}, at::kLong), /*accumulate=*/true);
  }
  e.count = d.size();
  e.top1 /= std::max<int64_t>(e.count, 1);
  e.top5 /= std::max<int64_t>(e.count, 1);
  for (int64_t c = 0; c < classes; ++c) {
    const double total = e.confusion[c].sum().item<double>();
    e.per_class.push_back(total > 0 ? e.confusion[c][c].item<double>() / total : 0.0);
  }
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return e;
}

nlohmann::json to_json(const Evaluation& e) {
  nlohmann::json confusion = nlohmann::json::array();
  const at::Tensor c = e.confusion.contiguous();
  for (int64_t i = 0; i < c.size(0); ++i) {
    const int64_t* row = c[i].data_ptr<int64_t>();
    confusion.push_back(std::vector<int64_t>(row, row + c.size(1)));
  }
  return {{"count", e.count}, {"top1", e.top1},           {"top5", e.top5},
          {"per_class", e.per_class}, {"confusion", confusion}, {"seconds", e.seconds}};
}

}  // namespace graft::train

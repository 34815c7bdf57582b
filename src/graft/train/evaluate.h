// graft::train — evaluation of a classifier on a labelled dataset.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "graft/data/dataset.h"
#include "graft/exec/session.h"

namespace graft::train {

struct Evaluation {
  int64_t count = 0;
  double top1 = 0, top5 = 0;                // fractions in [0, 1]
  std::vector<double> per_class;            // top-1 per true class
  at::Tensor confusion;                     // (classes, classes) int64: [true][predicted]
  double seconds = 0;
};

// Runs `session` (first graph output: class scores, logits or probabilities) over `data` in
// batches, preprocessed as `p` says. Labels must fit the model's classes.
Evaluation evaluate(exec::Session& session, const data::Dataset& data, const data::Preprocess& p,
                    int64_t batch = 256);

// {"count", "top1", "top5", "per_class", "confusion", "seconds"}: what graft eval --json prints
// per model and graft report draws.
nlohmann::json to_json(const Evaluation& e);

}  // namespace graft::train

// Closed-form least-squares initialisation of linear adapters (resampling + 1x1 convolution):
// the 1x1 convolution is a per-pixel linear map, so its weights and bias can be fitted to the
// server model's own activation by ridge-regularised least squares on a calibration batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>

#include "graft/data/dataset.h"
#include "graft/ir/graph.h"

namespace graft::train {

// W (in, out) and b (out) minimising |X W + b - T|^2 + ridge |W|^2 for X (n, in), T (n, out).
std::pair<at::Tensor, at::Tensor> fit_linear(const at::Tensor& x, const at::Tensor& t, double ridge = 1e-4);

// Initialises every 1x1 convolution that ends a linear adapter branch of `hybrid` from the
// first `samples` images of `data`, against the server model at `teacher` (default: the
// hybrid's tail source). Returns how many convolutions it set; Error if the hybrid has no
// linear adapter.
int lsq_init(ir::Graph& hybrid, const data::Dataset& data, const data::Preprocess& p,
             const std::string& teacher = "", int64_t samples = 512,
             const std::function<ir::Graph(const std::string&)>& read_model = {});

}  // namespace graft::train

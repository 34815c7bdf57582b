// Test helper: gives a randomly initialised model the BatchNorm statistics a trained one has.
//
// A freshly initialised zoo model has running mean 0 / variance 1 everywhere, and Keras'
// Glorot initialisation shrinks the signal layer by layer, so in inference mode its deep
// activations are ~1e-18 and comparisons on them would prove nothing. Setting every
// BatchNormalization's statistics to those of its input on a batch, in order, fixes that.
#pragma once

#include <ATen/ATen.h>

#include "graft/exec/session.h"

namespace graft::testing {

inline void calibrate_batch_norm(ir::Graph& g, const at::Tensor& x) {
  for (const auto& n : g.nodes) {
    if (n.op_type != "BatchNormalization") continue;
    exec::Session s(g);
    at::Tensor in = s.run({{g.inputs[0], x}}, {n.inputs[0]}).at(n.inputs[0]);
    g.initializers.at(n.inputs[3]).copy_(in.mean({0, 2, 3}));
    g.initializers.at(n.inputs[4]).copy_(in.var({0, 2, 3}, /*unbiased=*/false));
  }
}

}  // namespace graft::testing

// Shapes for every value of a graph, where they can be inferred.
//
// Uses ONNX's C++ shape inference with data propagation (so Shape → Gather → Concat → Reshape
// chains resolve). The batch dimension may stay symbolic; fix_batch() or --input-shape pins it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::ir {

// "[NAME=]1x3x224x224" from the command line.
struct InputShape {
  std::string name;  // empty: the model's only input
  std::vector<int64_t> dims;
};
InputShape parse_input_shape(const std::string& text);

// Sets the declared shape of the named inputs (Error for an unknown name, a missing name when
// the model has several inputs, or a rank that disagrees with the declared one).
void set_input_shapes(Graph& graph, const std::vector<InputShape>& shapes);

// Gives every graph input whose first dimension is not known the size `batch` (summaries and
// MAC counts are per image: batch 1).
void fix_batch(Graph& graph, int64_t batch = 1);

// Infers dtype and shape of every value it can, replacing earlier inferred values; values the
// inference cannot reach keep what the file declared. Throws Error if the declared shapes
// contradict each other (for example an input shape that a Conv's weights cannot accept).
void infer_shapes(Graph& graph);

}  // namespace graft::ir

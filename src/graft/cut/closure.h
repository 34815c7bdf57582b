// Internal to cut: backward closures over a graph's nodes.
#pragma once

#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::cut {

// Per node: is it needed to compute `tensors` from the graph inputs?
std::vector<bool> ancestors(const ir::Graph& graph, const std::vector<std::string>& tensors);

// Per node: is it needed to compute the graph outputs when `cut` is given? Graph inputs the
// outputs still need without passing through `cut` are added to `reached_inputs`.
std::vector<bool> tail_nodes(const ir::Graph& graph, const std::vector<std::string>& cut,
                             std::vector<std::string>* reached_inputs);

}  // namespace graft::cut

// Helpers the passes share (internal to graft::exec::passes).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::exec::passes {

// The only node reading `value` (index), or -1 when there are none or several, or when the
// value is a graph output.
int sole_consumer(const ir::Graph& g, const std::string& value);
// The initializer called `name`, or nullptr.
const at::Tensor* constant(const ir::Graph& g, const std::string& name);
// Makes every node that reads `from` read `to` instead.
void replace_uses(ir::Graph& g, const std::string& from, const std::string& to);
// Removes the nodes marked in `dead`, forgets values nothing refers to any more, and reindexes.
void erase_nodes(ir::Graph& g, const std::vector<bool>& dead);
// A name not yet used by any value or initializer, starting from `base`.
std::string fresh_name(const ir::Graph& g, const std::string& base);
// Adds an initializer (and its value entry) under a fresh name; returns the name.
std::string add_initializer(ir::Graph& g, const std::string& base, const at::Tensor& t);
// Imports graft's domain (version 1) if the graph does not yet.
void import_graft_domain(ir::Graph& g);
// Conv in the default domain, or graft's FusedConv.
bool is_conv(const ir::Node& n);
// For a constant-mode Pad with value 0 and constant, non-negative amounts on the spatial axes
// only (axes 2…): those amounts as ONNX orders pads (every axis' begin, then every end).
std::optional<std::vector<int64_t>> zero_spatial_pads(const ir::Graph& g, const ir::Node& pad);

}  // namespace graft::exec::passes

// graft::exec::passes — inference-time graph rewrites that keep every output the same (within
// float rounding) and make the graph cheaper to run.
//
// Each pass returns how many rewrites it made. A pass never renames or removes a graph output,
// a tensor recorded in graft.cut (the cut tensors of a head, tail or hybrid, the adapter's
// output and its split point) or a tensor in `keep`: a rewrite that would swallow one of them is
// skipped. Passes assume inference (BatchNormalization uses its running statistics, Dropout is
// the identity) and leave the graph reindexed with its shapes as they were.
//
// Fused convolutions are nodes of op type FusedConv in graft's own domain ("graft", version 1):
// Conv's inputs and attributes, an optional fourth input Z of the output's shape, and
// attributes `activation` (Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Silu,
// Gelu, GeluTanh or empty) and `activation_params` (alpha; min, max; alpha, beta):
// Y = activation(Conv(X) + Z). FusedMatMul: inputs X (rank >= 2), W (a 2-D constant), B (a
// constant row, optional), the same activation attributes: Y = activation(X W + B). Silu and
// Gelu (attribute `approximate`: "none" or "tanh") are graft-domain activations.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::exec::passes {

inline constexpr const char* kDomain = "graft";
inline constexpr const char* kFusedConv = "FusedConv";

// Graph outputs, graft.cut tensors and `keep`.
std::set<std::string> protected_tensors(const ir::Graph& graph, const std::set<std::string>& keep = {});

// Nodes whose outputs nobody uses, and initializers no node reads.
int remove_dead(ir::Graph& graph, const std::set<std::string>& protect);
// Identity, and Dropout whose mask is unused: consumers read the input directly.
int remove_identity(ir::Graph& graph, const std::set<std::string>& protect);
// Nodes whose inputs are all constant (and Shape of a fully known shape) become initializers.
int fold_constants(ir::Graph& graph, const std::set<std::string>& protect);
// BatchNormalization after Conv (or Gemm) folded into its weights and bias; else, before an
// unpadded, ungrouped Conv that alone reads it, into that Conv's.
int fold_batchnorm(ir::Graph& graph, const std::set<std::string>& protect);
// Zero constant Pad of the spatial axes before a Conv folded into the Conv's pads.
int fold_pad_into_conv(ir::Graph& graph, const std::set<std::string>& protect);
// Zero constant Pad of the spatial axes before an AveragePool folded into its pads, which then
// count (count_include_pad = 1), as the padded zeros did; PyTorch exports padded average pools
// with count_include_pad this way.
int fold_pad_into_pool(ir::Graph& graph, const std::set<std::string>& protect);
// Conv followed by a Mul by a per-output-channel (or scalar) constant: the scale goes into the
// Conv's weights and bias.
int fold_scale_into_conv(ir::Graph& graph, const std::set<std::string>& protect);
// Conv + Add of a same-shape tensor (a residual) -> FusedConv with Z.
int fuse_conv_add(ir::Graph& graph, const std::set<std::string>& protect);
// Decomposed functions as one node each: x * Sigmoid(x) -> graft.Silu, x * HardSigmoid(x) ->
// HardSwish, the Erf and Tanh forms of GELU -> graft.Gelu, LayerNorm over the last axis ->
// LayerNormalization, MatMul by a constant 2-D matrix (+ a constant row) -> graft.FusedMatMul.
int recognise_patterns(ir::Graph& graph, const std::set<std::string>& protect);
// Conv (or FusedConv, or FusedMatMul, without activation) + an activation -> the fused node.
int fuse_conv_activation(ir::Graph& graph, const std::set<std::string>& protect);

struct PassReport {
  std::string pass;
  int rewrites = 0;
};

// All passes, in an order where each enables the next, until nothing changes.
std::vector<PassReport> optimize(ir::Graph& graph, const std::set<std::string>& keep = {});

}  // namespace graft::exec::passes

// Per-node statistics of a graph, like Keras' model.summary(): output shapes, parameters and
// multiply-accumulates (MACs).
//
// Rows: the graph inputs first (row 0 is the input, as in Keras' model.layers), then one row per
// layer in topological order. A layer is one node, or a node together with its helpers: a node
// named "<L>/<part>" belongs to the layer of a later node named "<L>" (how graft names the ops of
// a Keras layer that needs several: Mul "block35_1/scale" + Add "block35_1", Gemm
// "predictions/logits" + Softmax "predictions"), so row numbers are Keras' layer indices. A
// helper's parameters and MACs count in its layer's row. Parameters follow Keras: the floating-point initializers a node
// uses as weights (Conv/ConvTranspose weight and bias, Gemm/MatMul matrices, normalisation
// scale and bias, PRelu slope, non-scalar Add/Mul operands such as layer scales), each counted
// once, at its first user; BatchNormalization's running mean and variance count as
// non-trainable; initializers listed in graft.constants and scalar or integer constants (Clip
// bounds, Reshape targets, Pad amounts) are not parameters. MACs count Conv, ConvTranspose, Gemm
// and MatMul; they are per the shapes given, so fix the batch to 1 for per-image figures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::ir {

struct SummaryRow {
  int64_t index = 0;
  std::string name;
  std::string op_type;  // "Input" for graph inputs
  std::vector<std::string> outputs;
  std::vector<std::optional<Shape>> output_shapes;
  int64_t params = 0;
  int64_t non_trainable = 0;
  std::optional<int64_t> macs;  // nullopt: shapes unknown
  std::vector<std::string> inputs_from;  // names of the nodes (or graph inputs) feeding it
};

struct Summary {
  std::vector<SummaryRow> rows;
  int64_t params = 0;
  int64_t trainable = 0;
  int64_t non_trainable = 0;
  int64_t macs = 0;
  int64_t nodes_with_unknown_macs = 0;
};

Summary summarize(const Graph& graph);

// For each node, the index of the node that carries its layer (itself unless it is a helper).
std::vector<int> layer_nodes(const Graph& graph);

// The summary row of each node (a helper has its layer's row); graph inputs take rows
// 0..inputs-1.
std::vector<int64_t> node_rows(const Graph& graph);
// The summary row index of one node.
int64_t row_index(const Graph& graph, int node_index);
// The node carrying the layer at summary row `row`, or -1 (a graph input's row, or past the end).
int node_at_row(const Graph& graph, int64_t row);

// MACs of one node, nullopt when the shapes it needs are unknown.
std::optional<int64_t> node_macs(const Graph& graph, const Node& node);

}  // namespace graft::ir

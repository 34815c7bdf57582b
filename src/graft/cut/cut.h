// graft::cut — where a model can be cut, and the two models a cut makes.
//
// Definitions (see docs/CUTTING.md for drawings):
// - A *cut* is a set of tensors S.
// - head(S): the nodes needed to compute S from the graph inputs, with S as outputs.
// - tail(S): the nodes needed to compute the graph outputs when S is given, with S as the new
//   graph inputs. S must separate the inputs from the outputs: if an output can still be
//   reached from a graph input without passing through S, tail(S) is an error that says so.
// - The *frontier* of layer i (a summary row index or a node name): every tensor produced by a
//   node at or before i and consumed after it (or a graph output), graph inputs and
//   initializers excluded.
// - A *cut point* is a tensor every path from the inputs to the outputs passes through: a
//   single-tensor cut. They are the dominators of a virtual sink after all outputs, in the DAG
//   of tensors rooted at a virtual source before all inputs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::cut {

struct CutPoint {
  std::string tensor;
  int node = -1;            // index of the producing node in graph.nodes
  int64_t row = 0;          // summary row of the producing node
  int64_t bytes = 0;        // bytes per image (shape with batch 1), -1 if unknown
  int64_t macs_before = 0;  // MACs of head(tensor): what the device computes
  int64_t macs_after = 0;   // MACs of tail(tensor): what the server computes
};

// Every cut point, in topological order (graph inputs and outputs excluded). Shapes should be
// inferred with batch 1 for bytes and MACs to be per image. Near-linear in the graph's size.
std::vector<CutPoint> cut_points(const ir::Graph& graph);

// Index into graph.nodes of a layer reference: a summary row ("36") or a node name. Throws an
// Error naming the reference if there is no such layer (graph-input rows are refused: cutting
// there leaves an empty head).
int resolve_layer(const ir::Graph& graph, const std::string& layer);

// The frontier of the layer at node index `node`.
std::vector<std::string> frontier(const ir::Graph& graph, int node);

// Advice on cutting right after one layer: the tensors that would cross (its frontier), graph
// inputs the rest would still read, whether that is a single-tensor cut, and the nearest cut
// points before (at or above the layer) and after it. `points` is cut_points(graph).
struct Advice {
  int node = -1;
  bool is_cut_point = false;
  std::vector<std::string> crossing;
  std::vector<std::string> inputs_still_needed;
  std::optional<CutPoint> before, after;
};
Advice advise(const ir::Graph& graph, int node, const std::vector<CutPoint>& points);

// A cut given as on the command line: comma-separated layers (row index or node name, each
// meaning its frontier) and tensors ("tensor:NAME"). Tensors are deduplicated, in order.
std::vector<std::string> resolve_cut(const ir::Graph& graph, const std::string& spec);

// The tensors, besides `cut`, through which some graph output is still reachable from a graph
// input (empty when `cut` separates inputs from outputs).
std::vector<std::string> leaks(const ir::Graph& graph, const std::vector<std::string>& cut);

// The two models of a cut. Both are complete ir::Graphs (reindexed; shapes as known in `graph`)
// that keep the source's opsets and metadata; head records role "head" and keeps the input
// preprocessing, tail records role "tail" and keeps the labels. `source` (file path) and its
// sha256, if given, are recorded in graft.cut. Errors name the tensor at fault: an unknown
// tensor, a graph input or initializer, a cut that does not separate inputs from outputs.
struct Source {
  std::string path;
  std::string sha256;
};
ir::Graph head(const ir::Graph& graph, const std::vector<std::string>& cut, const Source& source = {});
ir::Graph tail(const ir::Graph& graph, const std::vector<std::string>& cut, const Source& source = {});

}  // namespace graft::cut

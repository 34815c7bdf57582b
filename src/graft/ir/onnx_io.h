// Loading and saving ONNX models as ir::Graph.
//
// load() accepts IR versions 3–8 and default-domain opsets 7–17; initializers may be stored as
// raw_data, in the typed fields, or in external data files next to the model. Nodes given out
// of order are sorted; a cycle, a dangling input or a corrupt tensor is an Error naming the
// file and the node or tensor at fault. Unknown op types load fine (graft summarises them; the
// executor rejects them before running).
#pragma once

#include <string>

#include "graft/ir/graph.h"

namespace graft::ir {

inline constexpr int64_t kMinIrVersion = 3;
inline constexpr int64_t kMaxIrVersion = 8;
inline constexpr int64_t kMinOpset = 7;
inline constexpr int64_t kMaxOpset = 17;

struct LoadOptions {
  // false: large initializers become meta tensors (dtype and sizes, no values), which is all
  // that summaries, cut analysis and adapter design need, and far faster for large models.
  // Such a graph cannot be saved or run.
  bool weights = true;
};

// Reads (memory-mapped), parses and reindexes the model at `path`. Declared shapes are kept;
// call infer_shapes() (shapes.h) to fill in the rest.
Graph load(const std::string& path, const LoadOptions& options = {});

// Parses serialized ModelProto bytes; `base_dir` resolves external data, `origin` names the
// source in error messages.
Graph parse(const std::string& bytes, const std::string& base_dir, const std::string& origin,
            const LoadOptions& options = {});

// Serializes `graph` (initializers embedded as raw_data) and writes it atomically to `path`.
void save(const Graph& graph, const std::string& path);
std::string serialize(const Graph& graph);

// Reads a serialized onnx.TensorProto file (the format of ONNX's test data, input_0.pb) and
// writes one.
at::Tensor load_tensor(const std::string& path);
void save_tensor(const at::Tensor& tensor, const std::string& path);

// The graph converted to another default-domain opset with ONNX's version converter; Error
// naming the op if a conversion is not possible.
Graph convert_opset(const Graph& graph, int64_t version);

// Runs onnx::checker on the graph; throws Error with the checker's message if it fails.
void check(const Graph& graph);

}  // namespace graft::ir

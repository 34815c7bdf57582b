// graft::exec — runs an ir::Graph on LibTorch.
//
// A Session compiles the graph once (one kernel per node; every unsupported op is reported
// together, before anything runs) and then runs it for any set of requested values, computing
// only the nodes those values need. Inference sessions run under c10::InferenceMode and free
// each intermediate after its last use. Training sessions record autograd for the initializers
// marked trainable only; nodes listed in train_nodes run in training mode (BatchNormalization
// uses batch statistics and updates its running statistics), all others in eval mode.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::exec {

struct SessionOptions {
  bool training = false;
  std::set<std::string> trainable;    // initializers that require grad (training only)
  std::set<std::string> train_nodes;  // nodes run in training mode (training only)
  // Data-parallel training: a differentiable sum over the replicas; BatchNormalization nodes in
  // training mode then normalise with the global batch's statistics (SyncBatchNorm).
  std::function<at::Tensor(const at::Tensor&)> replica_sum;
  // Inference only: rewrite the graph first with graft::exec::passes (BatchNorm folding,
  // constant folding, fusions, …). Graph outputs, graft.cut tensors and `keep` stay
  // requestable; other intermediates may be fused away.
  bool optimize = false;
  std::set<std::string> keep;
  // With `optimize`: run through oneDNN (graft/exec/onednn/program.h), compiled on the first run of
  // each set of input shapes and requested outputs. False: the reference ATen kernels only.
  bool onednn = true;
};

// How an optimised session runs its graph (for the last compiled shapes).
struct EngineStats {
  int onednn_nodes = 0, reference_nodes = 0, reorders = 0;
  int64_t arena_bytes = 0;
  std::map<std::string, int> reference_ops;  // op type -> nodes run by their ATen kernel
  std::map<std::string, int> reference_kernel_ops;  // op type -> steps on oneDNN's reference kernels
  int folded_nodes = 0;  // shape arithmetic the program evaluated once, when it was compiled
};

// One step of a profiled run: a node, or a layout reorder the oneDNN path runs before one.
struct StepTime {
  std::string node;    // node name; for a reorder, the value reordered
  std::string op;      // op type, or "Reorder"
  std::string kernel;  // oneDNN implementation (e.g. "brgconv:avx512_core"), or "aten"
  double ms = 0;       // wall time of the step
};

struct RunOptions {
  // Check every node's outputs for NaN/Inf and fail naming the first node that made one.
  bool check_finite = false;
  // Append every step's wall time to *profile, in execution order. A run that compiles a
  // oneDNN program (the first of each input shapes) appends nothing: its times are compile
  // times.
  std::vector<StepTime>* profile = nullptr;
};

using TensorMap = std::map<std::string, at::Tensor>;

class Session {
 public:
  // `origin` (usually the model's path) prefixes error messages.
  explicit Session(ir::Graph graph, SessionOptions options = {}, std::string origin = "");
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  // Runs the graph. `outputs` empty: the graph outputs. Any value name may be requested.
  // Throws Error for a missing, unknown, mis-typed or mis-shaped input, or an unknown output.
  TensorMap run(const TensorMap& inputs, const std::vector<std::string>& outputs = {},
                const RunOptions& options = {});

  const ir::Graph& graph() const;
  // The initializers the session computes with (shared with graph().initializers): an
  // optimiser updates these in place.
  const std::map<std::string, at::Tensor>& initializers() const;
  std::vector<at::Tensor> trainable_parameters() const;
  // The oneDNN program of the latest run; nullopt before it, or without the oneDNN path.
  std::optional<EngineStats> engine_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Op types in `graph` that graft cannot run, each with the first node using it.
std::vector<std::pair<std::string, std::string>> unsupported_ops(const ir::Graph& graph);

}  // namespace graft::exec

namespace graft::exec {

// Whether some node output's shape is unknown (rank, or a dimension that is neither a size nor
// a symbol) after static inference.
bool has_incomplete_shapes(const ir::Graph& graph);

// Completes the shapes static inference left unknown (Shape -> arithmetic -> Slice chains, as in
// PyTorch's channel split) by running the graph on zeros of its inputs' declared sizes: at batch
// 1 and 2 when the first input dimension is a symbol, so batch dimensions stay that symbol and
// every other dimension becomes known. Needs the graph's weights (not meta tensors) and inputs
// whose other dimensions are known; otherwise the shapes stay as they are. Returns how many
// values it completed.
int complete_shapes(ir::Graph& graph);

}  // namespace graft::exec

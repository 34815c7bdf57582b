// graft::exec::onednn — the fast CPU path behind optimised inference sessions (internal to exec;
// the compiler is in this folder: program.cc plans and runs, one file per primitive family).
//
// A Program is an optimised graph compiled for one set of input shapes: the nodes oneDNN serves
// (2-D Conv and graft.FusedConv with their residual sum and activation as post-ops, max/average/
// global-average pooling, element-wise activations, Add/Sub/Mul/Div, channel Concat) become
// oneDNN primitives; their tensors stay in the layouts the primitives choose (blocked for
// convolutions) and are reordered only where a consumer needs another layout; every other node
// runs its reference ATen kernel on plain tensors. Weights are reordered once (and shared by the
// programs of a session through a WeightCache); intermediate buffers come from an arena planned
// from the tensors' lifetimes and are reused across runs, so a program runs one call at a time.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "graft/exec/session.h"
#include "graft/ir/graph.h"
#include "graft/ops/kernel.h"

namespace graft::exec::onednn {

// Reordered weights, keyed by initializer and layout, shared by a session's programs.
struct WeightCache;
std::shared_ptr<WeightCache> make_weight_cache();

struct ProgramStats {
  int onednn_nodes = 0;                  // nodes run as oneDNN primitives
  int reference_nodes = 0;               // nodes run by their ATen kernel
  int folded_nodes = 0;                  // shape arithmetic evaluated once, while compiling
  int reorders = 0;                      // layout conversions per run
  int64_t arena_bytes = 0;               // intermediate buffers
  std::map<std::string, int> reference_ops;  // op type -> nodes run by ATen
  // Steps oneDNN runs with its reference implementation ("ref:any"): slow, a missed fast path.
  std::map<std::string, int> reference_kernel_ops;  // op type -> such steps
};

class Program {
 public:
  // Compiles by running: each node's step is made and run on `inputs` in turn (so the shapes
  // of what ATen kernels make are known when their consumers compile), and the outputs of that
  // first run are kept for take_first_result(). `needed[i]`: node i contributes to `outputs`;
  // `kernels[i]`: its reference kernel, for the nodes oneDNN does not serve.
  Program(const ir::Graph& graph, const std::vector<ops::Kernel>& kernels,
          const std::vector<bool>& needed, const std::vector<std::string>& outputs,
          const std::map<std::string, at::Tensor>& inputs, WeightCache& weights);
  ~Program();

  std::map<std::string, at::Tensor> take_first_result();

  // `inputs`: the graph inputs at the compiled shapes (the session has checked them).
  // `profile`: when given, every step's time is appended to it.
  std::map<std::string, at::Tensor> run(const std::map<std::string, at::Tensor>& inputs,
                                        std::vector<StepTime>* profile = nullptr);
  const ProgramStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace graft::exec::onednn

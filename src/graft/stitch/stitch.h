// graft::stitch — the hybrid: head of model A + adapter + tail of model B, as one ONNX graph.
//
// Names: the head's nodes, tensors and initializers are prefixed "a/", the tail's "b/", the
// adapter's "adapter/" (or "adapter<i>/" for branch i when B's cut has several tensors); the
// graph inputs of A and the graph outputs of B keep their names. Inputs and preprocessing come
// from A, outputs and labels from B. Metadata: graft.role "hybrid", graft.trainable (the
// adapter's initializers), graft.cut (source files with sha256, the cut tensors, the adapter
// specs and its split point).
#pragma once

#include <cstdint>
#include <string>

#include "graft/ir/graph.h"

namespace graft::stitch {

struct Options {
  Options() = default;
  Options(std::string adapter_family_or_spec) : adapter(std::move(adapter_family_or_spec)) {}  // NOLINT
  Options(const char* adapter_family_or_spec) : adapter(adapter_family_or_spec) {}             // NOLINT

  std::string adapter = "conv";  // a family (conv, linear, bottleneck, resample) or a spec
  uint64_t seed = 0;             // adapter initialisation
  std::string head_path, tail_path;  // source files, recorded with their sha256 when given
};

// Cuts `a` at `layer_a` (which must be a single tensor: a cut point) and `b` at `layer_b` (any
// cut that separates its inputs from its outputs; one adapter branch per tensor), designs or
// validates the adapter and composes the hybrid (shapes are inferred here; the graphs need their
// weights). If their opsets differ, the older one is converted to the newer.
ir::Graph stitch(const ir::Graph& a, const std::string& layer_a, const ir::Graph& b,
                 const std::string& layer_b, const Options& options = {});

}  // namespace graft::stitch

// Internal to ir: conversion between ir::Graph and onnx::ModelProto.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstddef>
#include <limits>
#include <string>

#include "graft/ir/graph.h"
#include "graft/ir/wire.h"

namespace graft::ir {

// Payloads taken out of the proto's initializers (see wire.h), indexed like
// graph.initializer; null means every payload is still in the proto.
struct StrippedPayloads {
  const char* buffer = nullptr;
  const std::vector<std::optional<ByteSpan>>* spans = nullptr;
};

Graph from_proto(const onnx::ModelProto& model, const std::string& base_dir,
                 const std::string& origin, const StrippedPayloads& payloads = {},
                 bool shapes_only = false);

struct ProtoOptions {
  // Floating-point initializers with more elements than this are written as typed graph inputs without data
  // (enough for shape inference, which only needs their shapes). Default: embed everything.
  int64_t max_embedded_elements = std::numeric_limits<int64_t>::max();
  // Also write value_info for intermediate values whose type is known.
  bool with_value_info = true;
};
onnx::ModelProto to_proto(const Graph& graph, const ProtoOptions& options = {});

void fill_type(const Value& value, onnx::TypeProto* type);
void node_to_proto(const Node& node, onnx::NodeProto* proto);

}  // namespace graft::ir

// Conversion between onnx::TensorProto and at::Tensor (internal to ir; other modules use
// ir::load / ir::save). Every size in the proto is checked against the bytes actually present
// before anything is allocated, so a corrupt file yields an Error, never a crash.
#pragma once

#include <ATen/core/Tensor.h>
#include <onnx/onnx_pb.h>

#include <string>

namespace graft::ir {

// Where a tensor's payload is when it is not in the proto itself (taken out by
// strip_initializer_data), and whether values are wanted at all.
struct TensorSource {
  const char* raw_data = nullptr;  // the payload, if stripped from the proto
  size_t raw_size = 0;
  bool shapes_only = false;        // make a meta tensor (dtype and sizes, no data) instead
};

// `base_dir` resolves external data locations (relative to the model file's directory).
at::Tensor tensor_from_proto(const onnx::TensorProto& proto, const std::string& base_dir,
                             const TensorSource& source = {});

// Writes `tensor` into `proto` as raw_data (little-endian), with `name`.
void tensor_to_proto(const at::Tensor& tensor, const std::string& name, onnx::TensorProto* proto);

}  // namespace graft::ir

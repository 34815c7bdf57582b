// NPY arrays (numpy's .npy format, version 1–3, C order) as at::Tensor.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace graft::data {

// Reads float32/float64/int64/int32/uint8/bool arrays in C order. A malformed file, Fortran
// order or another dtype is an Error naming the file.
at::Tensor read_npy(const std::string& path);
at::Tensor parse_npy(const std::string& bytes, const std::string& origin);

// Writes `tensor` (any of the dtypes above) atomically.
void write_npy(const at::Tensor& tensor, const std::string& path);

}  // namespace graft::data

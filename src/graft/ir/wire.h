// Internal to ir: a minimal walk over the protobuf wire format of an ONNX ModelProto that takes
// the large raw_data payloads of graph initializers out before protobuf parses the rest.
//
// protobuf would copy every payload into a std::string (hundreds of MB for large models); graft
// instead reads each payload once, straight from the memory-mapped file, into its tensor — or
// not at all when only shapes are wanted.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace graft::ir {

struct ByteSpan {
  size_t offset = 0;
  size_t length = 0;
};

struct StrippedModel {
  std::string bytes;  // the ModelProto without the large initializer payloads
  // One entry per graph initializer, in order: where its raw_data was, if it was taken out.
  std::vector<std::optional<ByteSpan>> raw_data;
};

// Payloads of at least this many bytes are taken out.
inline constexpr size_t kMinStrippedBytes = 4096;

// nullopt when the bytes are not a well-formed message at the wire level, or use a shape this
// walk does not handle (repeated graph fields, groups); the caller then parses them as they are
// and lets protobuf report the problem.
std::optional<StrippedModel> strip_initializer_data(const char* data, size_t size);

}  // namespace graft::ir

// Node attributes, ONNX's AttributeProto in graft's own types (so this header needs no
// protobuf). Kinds graft never interprets (GRAPH, SPARSE_TENSOR, TYPE_PROTO, and their lists)
// are kept as the serialized AttributeProto and written back unchanged.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace graft::ir {

struct Attribute {
  enum class Kind { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings, kOpaque };

  std::string name;
  Kind kind = Kind::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;  // bytes, for kString
  at::Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::string opaque;  // serialized onnx::AttributeProto, for kOpaque
  std::string doc_string;

  static Attribute of_int(std::string name, int64_t v);
  static Attribute of_float(std::string name, float v);
  static Attribute of_string(std::string name, std::string v);
  static Attribute of_ints(std::string name, std::vector<int64_t> v);
  static Attribute of_floats(std::string name, std::vector<float> v);
  static Attribute of_tensor(std::string name, at::Tensor v);
};

const char* kind_name(Attribute::Kind kind);

// An ordered list of attributes with typed look-ups. A look-up of an attribute that exists
// with another kind throws Error ("attribute 'pads' is FLOAT, expected INTS").
class Attributes {
 public:
  std::vector<Attribute> list;

  const Attribute* find(const std::string& name) const;
  bool has(const std::string& name) const { return find(name) != nullptr; }

  int64_t get_int(const std::string& name, int64_t fallback) const;
  float get_float(const std::string& name, float fallback) const;
  std::string get_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& name,
                                const std::vector<int64_t>& fallback = {}) const;
  std::vector<float> get_floats(const std::string& name,
                                const std::vector<float>& fallback = {}) const;
  std::optional<at::Tensor> get_tensor(const std::string& name) const;

  // Replaces an attribute of the same name or appends.
  void set(Attribute attribute);
  void erase(const std::string& name);
};

}  // namespace graft::ir

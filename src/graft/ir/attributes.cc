#include "graft/ir/attributes.h"

#include <algorithm>

#include "graft/core/error.h"

namespace graft::ir {

const char* kind_name(Attribute::Kind kind) {
  switch (kind) {
    case Attribute::Kind::kFloat: return "FLOAT";
    case Attribute::Kind::kInt: return "INT";
    case Attribute::Kind::kString: return "STRING";
    case Attribute::Kind::kTensor: return "TENSOR";
    case Attribute::Kind::kFloats: return "FLOATS";
    case Attribute::Kind::kInts: return "INTS";
    case Attribute::Kind::kStrings: return "STRINGS";
    case Attribute::Kind::kOpaque: return "GRAPH/SPARSE_TENSOR/TYPE_PROTO";
  }
  return "?";
}

Attribute Attribute::of_int(std::string name, int64_t v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kInt;
  a.i = v;
  return a;
}
Attribute Attribute::of_float(std::string name, float v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kFloat;
  a.f = v;
  return a;
}
Attribute Attribute::of_string(std::string name, std::string v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kString;
  a.s = std::move(v);
  return a;
}
Attribute Attribute::of_ints(std::string name, std::vector<int64_t> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kInts;
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::of_floats(std::string name, std::vector<float> v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kFloats;
  a.floats = std::move(v);
  return a;
}
Attribute Attribute::of_tensor(std::string name, at::Tensor v) {
  Attribute a;
  a.name = std::move(name);
  a.kind = Kind::kTensor;
  a.t = std::move(v);
  return a;
}

namespace {

const Attribute* expect(const Attributes& attrs, const std::string& name, Attribute::Kind kind) {
  const Attribute* a = attrs.find(name);
  if (a != nullptr && a->kind != kind) {
    throw Error("attribute '" + name + "' is " + kind_name(a->kind) + ", expected " +
                kind_name(kind));
  }
  return a;
}

}  // namespace

const Attribute* Attributes::find(const std::string& name) const {
  for (const auto& a : list) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

int64_t Attributes::get_int(const std::string& name, int64_t fallback) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kInt);
  return a ? a->i : fallback;
}
float Attributes::get_float(const std::string& name, float fallback) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kFloat);
  return a ? a->f : fallback;
}
std::string Attributes::get_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kString);
  return a ? a->s : fallback;
}
std::vector<int64_t> Attributes::get_ints(const std::string& name,
                                          const std::vector<int64_t>& fallback) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kInts);
  return a ? a->ints : fallback;
}
std::vector<float> Attributes::get_floats(const std::string& name,
                                          const std::vector<float>& fallback) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kFloats);
  return a ? a->floats : fallback;
}
std::optional<at::Tensor> Attributes::get_tensor(const std::string& name) const {
  const Attribute* a = expect(*this, name, Attribute::Kind::kTensor);
  if (a == nullptr) return std::nullopt;
  return a->t;
}

void Attributes::set(Attribute attribute) {
  for (auto& a : list) {
    if (a.name == attribute.name) {
      a = std::move(attribute);
      return;
    }
  }
  list.push_back(std::move(attribute));
}

void Attributes::erase(const std::string& name) {
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const Attribute& a) { return a.name == name; }),
             list.end());
}

}  // namespace graft::ir

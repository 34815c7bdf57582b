#include "graft/ir/tensor_proto.h"

#include <ATen/ops/empty.h>

#include <cstring>
#include <fstream>
#include <limits>

#include "graft/core/error.h"
#include "graft/ir/graph.h"

namespace graft::ir {
namespace {

using onnx::TensorProto;

at::ScalarType scalar_type_of(int32_t dt, const std::string& name) {
  switch (dt) {
    case TensorProto::FLOAT: return at::kFloat;
    case TensorProto::DOUBLE: return at::kDouble;
    case TensorProto::FLOAT16: return at::kHalf;
    case TensorProto::BFLOAT16: return at::kBFloat16;
    case TensorProto::INT8: return at::kChar;
    case TensorProto::UINT8: return at::kByte;
    case TensorProto::INT16: return at::kShort;
    case TensorProto::INT32: return at::kInt;
    case TensorProto::INT64: return at::kLong;
    case TensorProto::BOOL: return at::kBool;
    default:
      throw Error("tensor '" + name + "' has data type " + dtype_name(dt) +
                  ", which graft does not support (supported: float32/64/16, bfloat16, "
                  "int8/16/32/64, uint8, bool)");
  }
}

// numel * element size, or an Error if the dimensions are negative or overflow.
size_t checked_bytes(const TensorProto& p, size_t element_size, int64_t* numel) {
  uint64_t n = 1;
  for (int64_t d : p.dims()) {
    if (d < 0) throw Error("tensor '" + p.name() + "' has a negative dimension " + std::to_string(d));
    if (d != 0 && n > std::numeric_limits<uint64_t>::max() / 4 / static_cast<uint64_t>(d)) {
      throw Error("tensor '" + p.name() + "' has dimensions too large to address");
    }
    n *= static_cast<uint64_t>(d);
  }
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() / 16)) {
    throw Error("tensor '" + p.name() + "' has dimensions too large to address");
  }
  *numel = static_cast<int64_t>(n);
  return static_cast<size_t>(n) * element_size;
}

void require_count(const TensorProto& p, int64_t have, int64_t want, const char* field) {
  if (have != want) {
    throw Error("tensor '" + p.name() + "' holds " + std::to_string(have) + " values in " + field +
                " but its dims need " + std::to_string(want));
  }
}

std::string read_external(const TensorProto& p, const std::string& base_dir, size_t want) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    try {
      if (kv.key() == "location") location = kv.value();
      if (kv.key() == "offset") offset = std::stoll(kv.value());
      if (kv.key() == "length") length = std::stoll(kv.value());
    } catch (const std::exception&) {
      throw Error("tensor '" + p.name() + "': external data field '" + kv.key() +
                  "' is not a number: '" + kv.value() + "'");
    }
  }
  if (location.empty()) throw Error("tensor '" + p.name() + "': external data has no location");
  if (location[0] == '/' || location.find("..") != std::string::npos) {
    throw Error("tensor '" + p.name() + "': external data location '" + location +
                "' must be a relative path inside the model's directory");
  }
  const std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    throw Error("tensor '" + p.name() + "': cannot open external data file " + path +
                " (it must sit next to the model)");
  }
  const int64_t size = static_cast<int64_t>(in.tellg());
  if (length < 0) length = static_cast<int64_t>(want);
  if (offset < 0 || length != static_cast<int64_t>(want) || offset > size ||
      length > size - offset) {
    throw Error("tensor '" + p.name() + "': external data in " + path + " at offset " +
                std::to_string(offset) + " length " + std::to_string(length) +
                " does not fit the file (" + std::to_string(size) + " bytes) or the tensor (" +
                std::to_string(want) + " bytes)");
  }
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (in.gcount() != length) throw Error("tensor '" + p.name() + "': short read from " + path);
  return bytes;
}

template <typename Dst, typename Src>
void copy_values(const Src& src, at::Tensor& t) {
  Dst* out = static_cast<Dst*>(t.data_ptr());
  for (int64_t k = 0; k < static_cast<int64_t>(src.size()); ++k) out[k] = static_cast<Dst>(src[k]);
}

}  // namespace

at::Tensor tensor_from_proto(const TensorProto& p, const std::string& base_dir,
                             const TensorSource& source) {
  if (p.segment().begin() != 0 || p.segment().end() != 0) {
    throw Error("tensor '" + p.name() + "' is segmented, which graft does not support");
  }
  const at::ScalarType st = scalar_type_of(p.data_type(), p.name());
  const size_t esize = c10::elementSize(st);
  int64_t numel = 0;
  const size_t nbytes = checked_bytes(p, esize, &numel);
  std::vector<int64_t> sizes(p.dims().begin(), p.dims().end());

  auto make = [&]() { return at::empty(sizes, at::TensorOptions().dtype(st)); };
  const bool external = p.data_location() == TensorProto::EXTERNAL;

  if (nbytes > 0 && !external && source.raw_data == nullptr && !p.has_raw_data() &&
      p.float_data_size() + p.int32_data_size() + p.int64_data_size() + p.double_data_size() == 0) {
    throw Error("tensor '" + p.name() + "' has no data for its " + std::to_string(numel) +
                " elements");
  }
  if (source.raw_data != nullptr || (external && source.shapes_only)) {
    if (source.raw_data != nullptr && source.raw_size != nbytes) {
      throw Error("tensor '" + p.name() + "' has " + std::to_string(source.raw_size) +
                  " bytes of raw_data but its dims and type need " + std::to_string(nbytes));
    }
    if (source.shapes_only) {
      return at::empty(sizes, at::TensorOptions().dtype(st).device(at::kMeta));
    }
    if (source.raw_data != nullptr) {
      at::Tensor t = make();
      if (nbytes) std::memcpy(t.data_ptr(), source.raw_data, nbytes);
      return t;
    }
  }
  if (external) {
    std::string bytes = read_external(p, base_dir, nbytes);
    at::Tensor t = make();
    if (nbytes) std::memcpy(t.data_ptr(), bytes.data(), nbytes);
    return t;
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes) {
      throw Error("tensor '" + p.name() + "' has " + std::to_string(p.raw_data().size()) +
                  " bytes of raw_data but its dims and type need " + std::to_string(nbytes));
    }
    at::Tensor t = make();
    if (nbytes) std::memcpy(t.data_ptr(), p.raw_data().data(), nbytes);
    return t;
  }
  // Typed fields, as the ONNX spec assigns them. Counts are checked before allocating.
  auto typed = [&](int64_t count, const char* field) {
    require_count(p, count, numel, field);
    return make();
  };
  at::Tensor t;
  switch (p.data_type()) {
    case TensorProto::FLOAT:
      t = typed(p.float_data_size(), "float_data");
      copy_values<float>(p.float_data(), t);
      break;
    case TensorProto::DOUBLE:
      t = typed(p.double_data_size(), "double_data");
      copy_values<double>(p.double_data(), t);
      break;
    case TensorProto::INT64:
      t = typed(p.int64_data_size(), "int64_data");
      copy_values<int64_t>(p.int64_data(), t);
      break;
    case TensorProto::INT32:
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<int32_t>(p.int32_data(), t);
      break;
    case TensorProto::INT16:
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<int16_t>(p.int32_data(), t);
      break;
    case TensorProto::INT8:
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<int8_t>(p.int32_data(), t);
      break;
    case TensorProto::UINT8:
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<uint8_t>(p.int32_data(), t);
      break;
    case TensorProto::BOOL:
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<bool>(p.int32_data(), t);
      break;
    case TensorProto::FLOAT16:
    case TensorProto::BFLOAT16:  // 16-bit patterns stored in int32_data
      t = typed(p.int32_data_size(), "int32_data");
      copy_values<uint16_t>(p.int32_data(), t);
      break;
    default:
      break;  // unreachable: scalar_type_of rejected it
  }
  return t;
}

void tensor_to_proto(const at::Tensor& tensor, const std::string& name, TensorProto* p) {
  if (tensor.is_meta()) {
    throw Error("tensor '" + name + "' was loaded without its values (shapes only); load the "
                "model with weights to save it");
  }
  p->Clear();
  p->set_name(name);
  p->set_data_type(dtype_of(tensor.scalar_type()));
  for (int64_t d : tensor.sizes()) p->add_dims(d);
  at::Tensor c = tensor.contiguous();
  p->set_raw_data(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

}  // namespace graft::ir

#include "graft/data/npy.h"

#include <ATen/ATen.h>

#include <cstring>
#include <regex>

#include "graft/core/error.h"
#include "graft/core/file.h"

namespace graft::data {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct NpyType {
  const char* descr;
  at::ScalarType type;
};
constexpr NpyType kTypes[] = {{"<f4", at::kFloat}, {"<f8", at::kDouble}, {"<i8", at::kLong},
                              {"<i4", at::kInt},   {"|u1", at::kByte},   {"|b1", at::kBool}};

}  // namespace

at::Tensor parse_npy(const std::string& bytes, const std::string& origin) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(origin + ": not a valid .npy file (" + why + ")");
  };
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) throw bad("no NUMPY magic");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, offset = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw bad("unknown version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) throw bad("truncated header");
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) throw bad("no descr");
  const std::string descr = m[1];
  if (std::regex_search(header, std::regex(R"('fortran_order'\s*:\s*True)"))) {
    throw Error(origin + ": Fortran-order arrays are not supported; save with np.ascontiguousarray");
  }
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) throw bad("no shape");
  std::vector<int64_t> shape;
  const std::string dims = m[1];
  std::regex num(R"(\d+)");
  for (auto it = std::sregex_iterator(dims.begin(), dims.end(), num); it != std::sregex_iterator(); ++it) {
    const std::string d = it->str();
    if (d.size() > 12) throw bad("dimension too large");
    shape.push_back(std::stoll(d));
  }
  const NpyType* type = nullptr;
  for (const auto& t : kTypes) {
    if (descr == t.descr || (descr.size() == 3 && descr[0] == '=' && descr.substr(1) == std::string(t.descr).substr(1))) type = &t;
  }
  if (type == nullptr) {
    throw Error(origin + ": dtype '" + descr + "' is not supported (float32, float64, int64, int32, uint8, bool)");
  }
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d != 0 && numel > (1ull << 40) / static_cast<uint64_t>(d)) throw bad("shape too large");
    numel *= static_cast<uint64_t>(d);
  }
  const size_t data_offset = offset + header_len;
  const size_t nbytes = static_cast<size_t>(numel) * c10::elementSize(type->type);
  if (bytes.size() - data_offset != nbytes) {
    throw Error(origin + ": holds " + std::to_string(bytes.size() - data_offset) +
                " bytes of data, but its shape and dtype need " + std::to_string(nbytes));
  }
  at::Tensor t = at::empty(shape, at::TensorOptions().dtype(type->type));
  if (nbytes) std::memcpy(t.data_ptr(), bytes.data() + data_offset, nbytes);
  return t;
}

at::Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

void write_npy(const at::Tensor& tensor, const std::string& path) {
  at::Tensor t = tensor.detach().contiguous();
  const NpyType* type = nullptr;
  for (const auto& k : kTypes) {
    if (k.type == t.scalar_type()) type = &k;
  }
  if (type == nullptr) {
    t = t.to(at::kFloat);
    type = &kTypes[0];
  }
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + ((t.dim() == 1 || i + 1 < t.dim()) ? "," : "");
  std::string header = "{'descr': '" + std::string(type->descr) + "', 'fortran_order': False, 'shape': (" + shape + "), }";
  const size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
  write_file_atomic(path, bytes);
}

}  // namespace graft::data

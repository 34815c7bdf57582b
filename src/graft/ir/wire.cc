#include "graft/ir/wire.h"

#include <cstdint>

namespace graft::ir {
namespace {

// Field numbers from onnx.proto.
constexpr uint32_t kModelGraph = 7;
constexpr uint32_t kGraphInitializer = 5;
constexpr uint32_t kTensorRawData = 9;

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class Reader {
 public:
  Reader(const char* data, size_t begin, size_t end) : data_(data), pos_(begin), end_(end) {}
  bool done() const { return pos_ >= end_; }
  size_t pos() const { return pos_; }

  bool varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= end_) return false;
      const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }

  // Reads one field: its number, wire type, and for length-delimited fields the payload range.
  bool field(uint32_t* number, uint32_t* type, size_t* payload_begin, size_t* payload_end) {
    uint64_t tag = 0;
    if (!varint(&tag)) return false;
    *number = static_cast<uint32_t>(tag >> 3);
    *type = static_cast<uint32_t>(tag & 7);
    if (*number == 0) return false;
    switch (*type) {
      case kVarint: {
        uint64_t ignored;
        return varint(&ignored);
      }
      case kFixed64: return skip(8);
      case kFixed32: return skip(4);
      case kLengthDelimited: {
        uint64_t len = 0;
        if (!varint(&len) || len > end_ - pos_) return false;
        *payload_begin = pos_;
        *payload_end = pos_ + len;
        pos_ += len;
        return true;
      }
      default: return false;  // groups are not used by ONNX
    }
  }

 private:
  bool skip(size_t n) {
    if (n > end_ - pos_) return false;
    pos_ += n;
    return true;
  }
  const char* data_;
  size_t pos_, end_;
};

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_submessage(std::string& out, uint32_t number, const std::string& body) {
  put_varint(out, (static_cast<uint64_t>(number) << 3) | kLengthDelimited);
  put_varint(out, body.size());
  out += body;
}

// A TensorProto without a large raw_data; `span` receives where the payload was.
bool strip_tensor(const char* d, size_t begin, size_t end, std::string* out,
                  std::optional<ByteSpan>* span) {
  Reader r(d, begin, end);
  bool seen_raw = false;
  while (!r.done()) {
    const size_t start = r.pos();
    uint32_t number, type;
    size_t pb = 0, pe = 0;
    if (!r.field(&number, &type, &pb, &pe)) return false;
    if (number == kTensorRawData && type == kLengthDelimited) {
      if (seen_raw) return false;  // protobuf's last-wins merge: leave such files to protobuf
      seen_raw = true;
      if (pe - pb >= kMinStrippedBytes) {
        *span = ByteSpan{pb, pe - pb};
        continue;
      }
    }
    out->append(d + start, r.pos() - start);
  }
  return true;
}

bool strip_graph(const char* d, size_t begin, size_t end, StrippedModel* m, std::string* out) {
  Reader r(d, begin, end);
  while (!r.done()) {
    const size_t start = r.pos();
    uint32_t number, type;
    size_t pb = 0, pe = 0;
    if (!r.field(&number, &type, &pb, &pe)) return false;
    if (number == kGraphInitializer && type == kLengthDelimited) {
      std::string tensor;
      std::optional<ByteSpan> span;
      if (!strip_tensor(d, pb, pe, &tensor, &span)) return false;
      m->raw_data.push_back(span);
      put_submessage(*out, number, tensor);
      continue;
    }
    out->append(d + start, r.pos() - start);
  }
  return true;
}

}  // namespace

std::optional<StrippedModel> strip_initializer_data(const char* data, size_t size) {
  StrippedModel m;
  Reader r(data, 0, size);
  bool seen_graph = false;
  while (!r.done()) {
    const size_t start = r.pos();
    uint32_t number, type;
    size_t pb = 0, pe = 0;
    if (!r.field(&number, &type, &pb, &pe)) return std::nullopt;
    if (number == kModelGraph && type == kLengthDelimited) {
      if (seen_graph) return std::nullopt;  // merged graph fields: leave to protobuf
      seen_graph = true;
      std::string graph;
      if (!strip_graph(data, pb, pe, &m, &graph)) return std::nullopt;
      put_submessage(m.bytes, number, graph);
      continue;
    }
    m.bytes.append(data + start, r.pos() - start);
  }
  return m;
}

}  // namespace graft::ir

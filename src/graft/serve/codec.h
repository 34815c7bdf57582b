// graft::serve codecs — how the split tensor travels between the device and the server.
//
// fp32 sends the tensor as it is. fp16 halves it (IEEE binary16, round to nearest even). int8
// quarters it: each channel (axis 1 of an (N, C, …) tensor) gets its own affine quantisation,
//   q = clamp(round(x / scale) + zero_point, -128, 127),   x ≈ (q - zero_point) * scale,
// over a range that always includes 0 (so ReLU zeros stay exact); the scales and zero points
// travel in the request's parameters. Any of them can be zstd-compressed on top.
//
// On the wire (Open Inference Protocol, see inference.proto), the input tensor's datatype is
// FP32, FP16 or INT8 and its parameters carry graft's extension:
//   graft.scale       string, the per-channel scales, comma-separated ("%.9g", exact floats)
//   graft.zero_point  string, the per-channel zero points, comma-separated integers
//   graft.zstd        bool, raw_input_contents is one zstd frame of the bytes above
// A plain Open Inference Protocol client sends FP32 without parameters, which needs none of it.
//
// This header has no LibTorch dependency: codecs work on float buffers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace graft::serve {

enum class Codec { kFp32, kFp16, kInt8 };

// "fp32" | "fp16" | "int8"; Error otherwise.
Codec parse_codec(const std::string& name);
const char* codec_name(Codec codec);
// The protocol datatype a codec sends: "FP32", "FP16", "INT8".
const char* codec_datatype(Codec codec);

inline constexpr const char* kParamScale = "graft.scale";
inline constexpr const char* kParamZeroPoint = "graft.zero_point";
inline constexpr const char* kParamZstd = "graft.zstd";

struct Encoded {
  std::string datatype;      // FP32 | FP16 | INT8
  std::string bytes;         // what goes into raw_input_contents (compressed if zstd)
  std::vector<float> scale;  // int8 only: one per channel
  std::vector<int32_t> zero_point;
  bool zstd = false;
};

// Encodes `count` floats of a tensor shaped `shape` (product(shape) == count).
Encoded encode(const float* data, const std::vector<int64_t>& shape, Codec codec, bool zstd,
               int zstd_level = 3);

// The most bytes one request's tensor may decode to (1 GiB).
constexpr uint64_t kMaxDecodedBytes = uint64_t{1} << 30;

// Decodes raw contents back to floats. `bytes` is the raw content as received (compressed if
// zstd). Throws Error with a message naming what disagrees (byte count vs shape and datatype,
// scale count vs channels, a corrupt or oversized zstd frame, an unknown datatype).
std::vector<float> decode(const std::string& datatype, const std::vector<int64_t>& shape,
                          const std::string& bytes, bool zstd, const std::vector<float>& scale,
                          const std::vector<int32_t>& zero_point);

// Element size of a protocol datatype this codec layer understands (FP32 4, FP16 2, INT8 1);
// 0 for any other.
size_t datatype_size(const std::string& datatype);

// product(shape); Error for a negative dimension or an overflowing product.
int64_t element_count(const std::vector<int64_t>& shape);

uint16_t float_to_half(float value);
float half_to_float(uint16_t half);

std::string zstd_compress(const std::string& bytes, int level);
// Decompresses one zstd frame that must hold exactly `expected` bytes; Error otherwise (and
// never allocates more than `expected` bytes, whatever the frame claims).
std::string zstd_decompress(const std::string& frame, size_t expected);

// The per-channel lists as they travel in parameters.
std::string join_floats(const std::vector<float>& values);
std::string join_ints(const std::vector<int32_t>& values);
std::vector<float> split_floats(const std::string& text, const char* what);
std::vector<int32_t> split_ints(const std::string& text, const char* what);

}  // namespace graft::serve

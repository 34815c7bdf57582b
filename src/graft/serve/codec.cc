#include "graft/serve/codec.h"

#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "graft/core/error.h"

namespace graft::serve {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// The channel layout the int8 codec quantises over: (outer, channels, inner).
struct Layout {
  int64_t outer = 1, channels = 1, inner = 1;
};

Layout layout_of(const std::vector<int64_t>& shape) {
  Layout l;
  if (shape.size() < 2) {
    l.inner = element_count(shape);
    return l;
  }
  l.outer = shape[0];
  l.channels = shape[1];
  l.inner = 1;
  for (size_t i = 2; i < shape.size(); ++i) l.inner *= shape[i];
  return l;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

Codec parse_codec(const std::string& name) {
  if (name == "fp32") return Codec::kFp32;
  if (name == "fp16") return Codec::kFp16;
  if (name == "int8") return Codec::kInt8;
  throw Error("unknown codec '" + name + "': use fp32, fp16 or int8");
}

const char* codec_name(Codec codec) {
  switch (codec) {
    case Codec::kFp32:
      return "fp32";
    case Codec::kFp16:
      return "fp16";
    case Codec::kInt8:
      return "int8";
  }
  return "?";
}

const char* codec_datatype(Codec codec) {
  switch (codec) {
    case Codec::kFp32:
      return "FP32";
    case Codec::kFp16:
      return "FP16";
    case Codec::kInt8:
      return "INT8";
  }
  return "?";
}

size_t datatype_size(const std::string& datatype) {
  if (datatype == "FP32") return 4;
  if (datatype == "FP16") return 2;
  if (datatype == "INT8") return 1;
  return 0;
}

int64_t element_count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("shape " + shape_text(shape) + " has a negative dimension");
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      throw Error("shape " + shape_text(shape) + " has too many elements");
    }
    n *= d;
  }
  return n;
}

uint16_t float_to_half(float value) {
  const uint32_t u = bits_of(value);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const int32_t exponent = static_cast<int32_t>((u >> 23) & 0xffu);
  uint32_t mantissa = u & 0x7fffffu;
  if (exponent == 0xff) {  // Inf stays Inf; NaN stays a (quiet) NaN
    return static_cast<uint16_t>(sign | 0x7c00u | (mantissa ? 0x200u | (mantissa >> 13) : 0u));
  }
  const int32_t e = exponent - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // too large: Inf
  if (e <= 0) {
    // A half subnormal (or zero): m * 2^-24 with m = full mantissa >> (14 - e).
    if (e < -10) return sign;
    mantissa |= 0x800000u;
    const uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1u))) ++half;  // to nearest, ties to even
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
  const uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // a carry may make it Inf: right
  return static_cast<uint16_t>(sign | half);
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) return float_of(sign | 0x7f800000u | (mantissa << 13));
  return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

std::string zstd_compress(const std::string& bytes, int level) {
  std::string out(ZSTD_compressBound(bytes.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), bytes.data(), bytes.size(), level);
  if (ZSTD_isError(n))
    throw Error(std::string("zstd compression failed: ") + ZSTD_getErrorName(n),
                ErrorKind::kInternal);
  out.resize(n);
  return out;
}

std::string zstd_decompress(const std::string& frame, size_t expected) {
  const unsigned long long claimed = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (claimed == ZSTD_CONTENTSIZE_ERROR) throw Error("the contents are not a zstd frame");
  if (claimed != ZSTD_CONTENTSIZE_UNKNOWN && claimed != expected) {
    throw Error("the zstd frame holds " + std::to_string(claimed) +
                " bytes; the shape and datatype need " + std::to_string(expected));
  }
  std::string out(expected, '\0');
  const size_t n = ZSTD_decompress(out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n)) throw Error(std::string("corrupt zstd frame: ") + ZSTD_getErrorName(n));
  if (n != expected) {
    throw Error("the zstd frame holds " + std::to_string(n) +
                " bytes; the shape and datatype need " + std::to_string(expected));
  }
  return out;
}

std::string join_floats(const std::vector<float>& values) {
  std::string s;
  char buf[32];
  for (size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(values[i]));
    if (i) s += ',';
    s += buf;
  }
  return s;
}

std::string join_ints(const std::vector<int32_t>& values) {
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) s += (i ? "," : "") + std::to_string(values[i]);
  return s;
}

namespace {

template <typename T, typename Parse>
std::vector<T> split_list(const std::string& text, const char* what, Parse parse) {
  std::vector<T> out;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    char* stop = nullptr;
    errno = 0;
    const T v = parse(item.c_str(), &stop);
    if (item.empty() || stop != item.c_str() + item.size() || errno == ERANGE) {
      throw Error(std::string("parameter ") + what + ": '" + item + "' is not a number");
    }
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

}  // namespace

std::vector<float> split_floats(const std::string& text, const char* what) {
  return split_list<float>(text, what,
                           [](const char* s, char** end) { return std::strtof(s, end); });
}

std::vector<int32_t> split_ints(const std::string& text, const char* what) {
  return split_list<int32_t>(text, what, [](const char* s, char** end) {
    const long v = std::strtol(s, end, 10);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
      errno = ERANGE;
    return static_cast<int32_t>(v);
  });
}

Encoded encode(const float* data, const std::vector<int64_t>& shape, Codec codec, bool zstd,
               int zstd_level) {
  const int64_t count = element_count(shape);
  Encoded e;
  e.datatype = codec_datatype(codec);
  switch (codec) {
    case Codec::kFp32:
      e.bytes.assign(reinterpret_cast<const char*>(data),
                     static_cast<size_t>(count) * sizeof(float));
      break;
    case Codec::kFp16: {
      e.bytes.resize(static_cast<size_t>(count) * 2);
      auto* out = reinterpret_cast<unsigned char*>(e.bytes.data());
      for (int64_t i = 0; i < count; ++i) {
        const uint16_t h = float_to_half(data[i]);
        out[2 * i] = static_cast<unsigned char>(h & 0xff);  // little-endian, as the protocol says
        out[2 * i + 1] = static_cast<unsigned char>(h >> 8);
      }
      break;
    }
    case Codec::kInt8: {
      const Layout l = layout_of(shape);
      e.scale.resize(static_cast<size_t>(l.channels));
      e.zero_point.resize(static_cast<size_t>(l.channels));
      e.bytes.resize(static_cast<size_t>(count));
      auto* out = reinterpret_cast<int8_t*>(e.bytes.data());
      for (int64_t c = 0; c < l.channels; ++c) {
        float lo = 0, hi = 0;  // the range always includes 0, so zeros stay exact
        for (int64_t n = 0; n < l.outer; ++n) {
          const float* p = data + (n * l.channels + c) * l.inner;
          for (int64_t i = 0; i < l.inner; ++i) {
            if (!std::isfinite(p[i]))
              throw Error("the tensor holds NaN or Inf; the int8 codec cannot carry it (use fp32)");
            lo = std::min(lo, p[i]);
            hi = std::max(hi, p[i]);
          }
        }
        float scale = (hi - lo) / 255.0f;
        if (!(scale > 0) || !std::isfinite(scale))
          scale = hi - lo > 0 ? std::numeric_limits<float>::max() / 256 : 1.0f;
        const float zp = std::clamp(std::nearbyint(-128.0f - lo / scale), -128.0f, 127.0f);
        e.scale[c] = scale;
        e.zero_point[c] = static_cast<int32_t>(zp);
        const float inv = 1.0f / scale;
        for (int64_t n = 0; n < l.outer; ++n) {
          const int64_t base = (n * l.channels + c) * l.inner;
          for (int64_t i = 0; i < l.inner; ++i) {
            const float q = std::clamp(std::nearbyint(data[base + i] * inv) + zp, -128.0f, 127.0f);
            out[base + i] = static_cast<int8_t>(q);
          }
        }
      }
      break;
    }
  }
  if (zstd) {
    e.bytes = zstd_compress(e.bytes, zstd_level);
    e.zstd = true;
  }
  return e;
}

std::vector<float> decode(const std::string& datatype, const std::vector<int64_t>& shape,
                          const std::string& bytes, bool zstd, const std::vector<float>& scale,
                          const std::vector<int32_t>& zero_point) {
  const size_t size = datatype_size(datatype);
  if (size == 0)
    throw Error("datatype '" + datatype + "' is not one graft decodes: send FP32, FP16 or INT8");
  const int64_t count = element_count(shape);
  // Also what a zstd frame may inflate to: a request cannot make the server allocate more.
  if (static_cast<uint64_t>(count) > kMaxDecodedBytes / size) {
    throw Error("shape " + shape_text(shape) + " of " + datatype + " needs more than " +
                std::to_string(kMaxDecodedBytes >> 20) + " MiB; send smaller batches");
  }
  const size_t expected = static_cast<size_t>(count) * size;
  std::string inflated;
  const std::string* raw = &bytes;
  if (zstd) {
    inflated = zstd_decompress(bytes, expected);
    raw = &inflated;
  } else if (bytes.size() != expected) {
    throw Error("the contents hold " + std::to_string(bytes.size()) + " bytes, but shape " +
                shape_text(shape) + " of " + datatype + " needs " + std::to_string(expected));
  }
  std::vector<float> out(static_cast<size_t>(count));
  const auto* in = reinterpret_cast<const unsigned char*>(raw->data());
  if (datatype == "FP32") {
    if (expected > 0) std::memcpy(out.data(), in, expected);  // (an empty vector's data() may be null)
  } else if (datatype == "FP16") {
    for (int64_t i = 0; i < count; ++i) {
      out[i] = half_to_float(static_cast<uint16_t>(in[2 * i] | (in[2 * i + 1] << 8)));
    }
  } else {  // INT8
    const Layout l = layout_of(shape);
    if (static_cast<int64_t>(scale.size()) != l.channels ||
        static_cast<int64_t>(zero_point.size()) != l.channels) {
      throw Error("INT8 contents with " + std::to_string(l.channels) + " channels need as many " +
                  kParamScale + " and " + kParamZeroPoint + " values; got " +
                  std::to_string(scale.size()) + " and " + std::to_string(zero_point.size()));
    }
    const auto* q = reinterpret_cast<const int8_t*>(in);
    for (int64_t n = 0; n < l.outer; ++n) {
      for (int64_t c = 0; c < l.channels; ++c) {
        const int64_t base = (n * l.channels + c) * l.inner;
        const float s = scale[c];
        const int32_t z = zero_point[c];
        for (int64_t i = 0; i < l.inner; ++i)
          out[base + i] = static_cast<float>(q[base + i] - z) * s;
      }
    }
  }
  return out;
}

}  // namespace graft::serve

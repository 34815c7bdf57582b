#include "graft/serve/codec.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "../common/errors.h"

namespace graft::serve {
namespace {

std::vector<float> random_values(size_t n, unsigned seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

TEST(HalfTest, KnownValues) {
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);                          // the largest half
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);                          // rounds up to Inf
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);             // the smallest subnormal
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -26)), 0x0000);             // underflows
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // a tie: to even (down)
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // a tie: to even (up)
  EXPECT_EQ(float_to_half(INFINITY), 0x7c00);
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(NAN))));
  EXPECT_EQ(half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0xfc00), -INFINITY);
}

TEST(HalfTest, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << "half 0x" << std::hex << h;
  }
}

TEST(CodecTest, Fp32IsExact) {
  const std::vector<float> x = random_values(2 * 3 * 4 * 5, 1, -3, 3);
  const Encoded e = encode(x.data(), {2, 3, 4, 5}, Codec::kFp32, false);
  EXPECT_EQ(e.datatype, "FP32");
  EXPECT_EQ(e.bytes.size(), x.size() * 4);
  EXPECT_EQ(decode(e.datatype, {2, 3, 4, 5}, e.bytes, false, {}, {}), x);
}

TEST(CodecTest, Fp16WithinHalfPrecision) {
  const std::vector<float> x = random_values(1000, 2, -10, 10);
  const Encoded e = encode(x.data(), {10, 100}, Codec::kFp16, false);
  EXPECT_EQ(e.bytes.size(), 2000u);
  const std::vector<float> y = decode("FP16", {10, 100}, e.bytes, false, {}, {});
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_LE(std::abs(y[i] - x[i]), std::abs(x[i]) * 0x1p-11f + 1e-7f);
}

TEST(CodecTest, Int8PerChannelWithinHalfAStep) {
  // Channels with very different ranges: per-channel scales keep each one's error small.
  const int64_t n = 3, c = 4, hw = 25;
  std::vector<float> x(static_cast<size_t>(n * c * hw));
  const float ranges[] = {0.01f, 1.0f, 50.0f, 3.0f};
  std::mt19937 rng(3);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      std::uniform_real_distribution<float> dist(ch == 3 ? 0.0f : -ranges[ch],
                                                 ranges[ch]);  // channel 3: ReLU-like
      for (int64_t k = 0; k < hw; ++k) x[static_cast<size_t>((i * c + ch) * hw + k)] = dist(rng);
    }
  }
  x[static_cast<size_t>(3 * hw)] = 0.0f;  // a zero in channel 3
  const Encoded e = encode(x.data(), {n, c, 5, 5}, Codec::kInt8, false);
  ASSERT_EQ(e.scale.size(), 4u);
  ASSERT_EQ(e.zero_point.size(), 4u);
  EXPECT_EQ(e.bytes.size(), x.size());
  const std::vector<float> y = decode("INT8", {n, c, 5, 5}, e.bytes, false, e.scale, e.zero_point);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t k = 0; k < hw; ++k) {
        const size_t at = static_cast<size_t>((i * c + ch) * hw + k);
        EXPECT_LE(std::abs(y[at] - x[at]), 0.5f * e.scale[ch] * 1.001f) << "channel " << ch;
      }
    }
  }
  EXPECT_EQ(y[static_cast<size_t>(3 * hw)], 0.0f);  // zero is exact
  EXPECT_LT(e.scale[0], 1e-3f);                     // the small channel got a fine scale
}

TEST(CodecTest, Int8ConstantAndZeroChannels) {
  const std::vector<float> x = {0, 0, 0, 0, 2.5f, 2.5f, 2.5f, 2.5f};
  const Encoded e = encode(x.data(), {1, 2, 2, 2}, Codec::kInt8, false);
  const std::vector<float> y = decode("INT8", {1, 2, 2, 2}, e.bytes, false, e.scale, e.zero_point);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(y[i], 0.0f);
  for (size_t i = 4; i < 8; ++i) EXPECT_NEAR(y[i], 2.5f, 0.5f * e.scale[1] * 1.001f);
  const float bad[] = {1.0f, NAN};
  EXPECT_NE(testing::error_message([&] {
              encode(bad, {1, 1, 2}, Codec::kInt8, false);
            }).find("NaN"),
            std::string::npos);
}

TEST(CodecTest, ZstdRoundTripsAndShrinksSparseTensors) {
  std::vector<float> x(4096, 0.0f);
  for (size_t i = 0; i < x.size(); i += 7) x[i] = static_cast<float>(i);
  for (Codec c : {Codec::kFp32, Codec::kFp16, Codec::kInt8}) {
    const Encoded plain = encode(x.data(), {1, 16, 16, 16}, c, false);
    const Encoded packed = encode(x.data(), {1, 16, 16, 16}, c, true);
    EXPECT_TRUE(packed.zstd);
    EXPECT_LT(packed.bytes.size(), plain.bytes.size()) << codec_name(c);
    EXPECT_EQ(
        decode(packed.datatype, {1, 16, 16, 16}, packed.bytes, true, packed.scale,
               packed.zero_point),
        decode(plain.datatype, {1, 16, 16, 16}, plain.bytes, false, plain.scale, plain.zero_point));
  }
}

TEST(CodecTest, MalformedContentsAreNamed) {
  const std::vector<float> x(8, 1.0f);
  const Encoded e = encode(x.data(), {2, 4}, Codec::kFp32, false);
  EXPECT_NE(testing::error_message([&] {
              decode("FP32", {3, 4}, e.bytes, false, {}, {});
            }).find("hold 32 bytes, but shape [3, 4] of FP32 needs 48"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] {
              decode("INT64", {2, 4}, e.bytes, false, {}, {});
            }).find("INT64"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] {
              decode("FP32", {2, 4}, e.bytes, true, {}, {});
            }).find("not a zstd frame"),
            std::string::npos);
  // A frame claiming more than the shape allows is refused before anything is allocated for it.
  const std::string big = zstd_compress(std::string(1 << 20, 'x'), 3);
  EXPECT_NE(testing::error_message([&] {
              decode("FP32", {2, 4}, big, true, {}, {});
            }).find("holds 1048576 bytes"),
            std::string::npos);
  const Encoded q = encode(x.data(), {2, 4}, Codec::kInt8, false);
  EXPECT_NE(testing::error_message([&] {
              decode("INT8", {2, 4}, q.bytes, false, {1.0f}, {0});
            }).find("4 channels need as many graft.scale"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] {
              decode("FP32", {2, -4}, e.bytes, false, {}, {});
            }).find("negative"),
            std::string::npos);
  // Element counts whose bytes overflow, or past what one request may decode to, are refused
  // before anything is allocated (also for a zstd frame claiming that size).
  for (const std::vector<int64_t>& huge : {std::vector<int64_t>{int64_t{1} << 31, int64_t{1} << 31},
                                           std::vector<int64_t>{int64_t{1} << 29, 3}}) {
    EXPECT_NE(testing::error_message([&] { decode("FP32", huge, e.bytes, false, {}, {}); }).find("MiB"),
              std::string::npos);
    EXPECT_NE(testing::error_message([&] { decode("FP16", huge, big, true, {}, {}); }).find("MiB"),
              std::string::npos);
  }
  EXPECT_NE(testing::error_message([&] {
              decode("FP32", {int64_t{1} << 40, int64_t{1} << 40}, e.bytes, false, {}, {});
            }).find("too many elements"),
            std::string::npos);
  EXPECT_NE(testing::error_message([&] { parse_codec("bf16"); }).find("use fp32, fp16 or int8"),
            std::string::npos);
}

TEST(CodecTest, ParameterListsRoundTripExactly) {
  const std::vector<float> f = {1.0f / 3, 1e-30f, 123456.789f, -0.0f};
  EXPECT_EQ(split_floats(join_floats(f), "s"), f);
  const std::vector<int32_t> z = {-128, 0, 127};
  EXPECT_EQ(split_ints(join_ints(z), "z"), z);
  EXPECT_NE(testing::error_message([] {
              split_floats("1,x", "graft.scale");
            }).find("graft.scale: 'x' is not a number"),
            std::string::npos);
  EXPECT_NE(testing::error_message([] {
              split_ints("1,,2", "graft.zero_point");
            }).find("'' is not a number"),
            std::string::npos);
}

}  // namespace
}  // namespace graft::serve

#include "graft/data/npy.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "graft/core/error.h"
#include "graft/core/file.h"

namespace graft::data {
namespace {

std::string npy_bytes(const std::string& header_dict, const std::string& payload) {
  std::string header = header_dict;
  header += std::string((64 - (10 + header.size() + 1) % 64) % 64, ' ') + "\n";
  std::string b("\x93NUMPY\x01\x00", 8);
  b += static_cast<char>(header.size() & 0xff);
  b += static_cast<char>(header.size() >> 8);
  return b + header + payload;
}

TEST(NpyTest, RoundTripsEveryDtype) {
  const std::string path = ::testing::TempDir() + "/t.npy";
  for (auto type : {at::kFloat, at::kDouble, at::kLong, at::kInt, at::kByte, at::kBool}) {
    at::Tensor t = (at::rand({2, 3, 4}) * 10).to(type);
    write_npy(t, path);
    at::Tensor back = read_npy(path);
    EXPECT_EQ(back.scalar_type(), type);
    EXPECT_TRUE(at::equal(back, t)) << c10::toString(type);
  }
  write_npy(at::tensor(std::vector<int64_t>{7}), path);  // 1-D shape is written as (1,)
  EXPECT_EQ(read_npy(path).sizes(), (std::vector<int64_t>{1}));
}

TEST(NpyTest, ParsesWhatNumpyWrites) {
  const float values[] = {1.5f, -2.0f, 3.25f, 0.0f, 8.0f, 9.5f};
  const std::string bytes = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                      std::string(reinterpret_cast<const char*>(values), sizeof(values)));
  at::Tensor t = parse_npy(bytes, "x.npy");
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t[1][2].item<float>(), 9.5f);
}

TEST(NpyTest, MalformedFilesAreErrorsNamingTheFile) {
  const std::string good_payload(24, '\0');
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"junk", "definitely not numpy"},
      {"short", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", std::string(20, '\0'))},
      {"fortran", npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", good_payload)},
      {"complex", npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", good_payload)},
      {"big-endian", npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", good_payload)},
      {"no-shape", npy_bytes("{'descr': '<f4', 'fortran_order': False}", good_payload)},
  };
  for (const auto& [name, bytes] : bad) {
    try {
      parse_npy(bytes, name + ".npy");
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name + ".npy"), std::string::npos) << e.what();
    }
  }
  for (size_t len = 0; len < 80; len += 3) {  // every truncation is an error, never a crash
    const std::string full = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", good_payload);
    EXPECT_THROW(parse_npy(full.substr(0, len), "cut.npy"), Error);
  }
}

}  // namespace
}  // namespace graft::data

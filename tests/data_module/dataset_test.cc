#include "graft/data/dataset.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "../common/errors.h"
#include "graft/core/error.h"
#include "graft/data/npy.h"

namespace graft::data {
namespace {

namespace fs = std::filesystem;

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& payload) {
  std::string b{'\0', '\0', '\x08', static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b += static_cast<char>((d >> s) & 0xff);
  }
  return b + std::string(payload.begin(), payload.end());
}

void write(const std::string& path, const std::string& bytes, bool gzip) {
  if (!gzip) {
    std::ofstream(path, std::ios::binary) << bytes;
    return;
  }
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

class DatasetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "/ds_" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(DatasetTest, FashionMnistFromDebianHasKnownLabels) {
  Dataset test = open_dataset("fashion-mnist", "test");
  ASSERT_EQ(test.size(), 10000);
  EXPECT_EQ(test.images.sizes(), (std::vector<int64_t>{10000, 28, 28, 1}));
  // The first test labels of Fashion-MNIST: ankle boot, pullover, trouser, trouser, shirt.
  EXPECT_EQ(test.labels.slice(0, 0, 5).equal(at::tensor(std::vector<int64_t>{9, 2, 1, 1, 6})), true);
  EXPECT_EQ(test.classes.at(9), "Ankle boot");
  EXPECT_EQ(test.labels.bincount().min().item<int64_t>(), 1000);  // balanced: 1,000 per class
  EXPECT_EQ(test.images[0][0][0][0].item<uint8_t>(), 0);           // black border
  EXPECT_GT(test.images[0].max().item<uint8_t>(), 200);            // a bright garment
  EXPECT_EQ(open_dataset("fashion-mnist", "train").size(), 60000);
}

TEST_F(DatasetTest, IdxPlainAndGzipGiveKnownPixels) {
  std::vector<uint8_t> pixels(2 * 3 * 4);
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 7);
  for (bool gz : {false, true}) {
    const std::string ext = gz ? ".gz" : "";
    write(dir_ + "/train-images-idx3-ubyte" + ext, idx_bytes({2, 3, 4}, pixels), gz);
    write(dir_ + "/train-labels-idx1-ubyte" + ext, idx_bytes({2}, {4, 1}), gz);
    Dataset d = open_dataset(dir_, "train");
    ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{2, 3, 4, 1}));
    EXPECT_EQ(d.images[1][2][3][0].item<uint8_t>(), 23 * 7);
    EXPECT_EQ(d.labels[0].item<int64_t>(), 4);
    fs::remove(dir_ + "/train-images-idx3-ubyte" + ext);
    fs::remove(dir_ + "/train-labels-idx1-ubyte" + ext);
  }
}

TEST_F(DatasetTest, BadDataNamesTheFile) {
  const auto message = testing::error_message;
  write(dir_ + "/train-images-idx3-ubyte", idx_bytes({2, 3, 4}, std::vector<uint8_t>(24)), false);
  write(dir_ + "/train-labels-idx1-ubyte", idx_bytes({3}, {0, 1, 2}), false);
  EXPECT_NE(message([&] { open_dataset(dir_, "train"); }).find("holds 2 images but"), std::string::npos);
  write(dir_ + "/train-images-idx3-ubyte", idx_bytes({2, 3, 4}, std::vector<uint8_t>(20)), false);
  EXPECT_NE(message([&] { open_dataset(dir_, "train"); }).find("train-images-idx3-ubyte: holds 20 bytes"), std::string::npos);
  write(dir_ + "/train-images-idx3-ubyte", "garbage", false);
  EXPECT_NE(message([&] { open_dataset(dir_, "train"); }).find("not an IDX file"), std::string::npos);
  EXPECT_NE(message([&] { open_dataset(dir_ + "/nope", "train"); }).find("nope: no such directory"), std::string::npos);
  Dataset d;
  d.labels = at::tensor(std::vector<int64_t>{0, 3, 12});
  d.origin = "labels.npy";
  EXPECT_NE(message([&] { check_labels(d, 10); }).find("label 12 of example 2 is outside the model's 10 classes"),
            std::string::npos);
}

TEST_F(DatasetTest, NpyPairs) {
  write_npy(at::randint(0, 255, {5, 8, 8}, at::kLong).to(at::kByte), dir_ + "/x.npy");
  write_npy(at::tensor(std::vector<int64_t>{0, 1, 0, 1, 1}), dir_ + "/y.npy");
  Dataset d = open_dataset(dir_ + "/x.npy," + dir_ + "/y.npy", "test");
  EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{5, 8, 8, 1}));
  write_npy(at::tensor(std::vector<int64_t>{0, 1}), dir_ + "/short.npy");
  EXPECT_THROW(open_dataset(dir_ + "/x.npy," + dir_ + "/short.npy", "test"), Error);
  fs::create_directories(dir_ + "/empty_folder/cats");
  EXPECT_THROW(open_dataset(dir_ + "/empty_folder", "train"), Error);
}

TEST_F(DatasetTest, PreprocessBatchReplicatesChannelsAndResizes) {
  Preprocess p;
  p.height = p.width = 32;
  p.channels = 3;
  p.scale = 1.0 / 255;
  p.mean = {0.5, 0.5, 0.5};
  p.std = {0.5, 0.5, 0.5};
  at::Tensor x = preprocess_batch(at::full({4, 28, 28, 1}, 255, at::kByte), p);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{4, 3, 32, 32}));
  EXPECT_NEAR(x.min().item<float>(), 1.0f, 1e-5);
}

}  // namespace
}  // namespace graft::data

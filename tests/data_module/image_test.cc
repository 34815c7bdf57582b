#include "graft/data/image.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

// stb_image_write's implementation is compiled into graft_data (data/stb_image_impl.cc).
#include <stb/stb_image_write.h>

#include <filesystem>
#include <fstream>

#include "graft/core/error.h"
#include "graft/data/dataset.h"
#include "graft/zoo/zoo.h"

namespace graft::data {
namespace {

std::string write_png(const std::string& name, int w, int h, int c, unsigned char value) {
  const std::string path = ::testing::TempDir() + "/" + name;
  std::vector<unsigned char> pixels(static_cast<size_t>(w * h * c), value);
  stbi_write_png(path.c_str(), w, h, c, pixels.data(), w * c);
  return path;
}

TEST(ImageTest, DecodesAndConvertsChannels) {
  const std::string grey = write_png("grey.png", 5, 4, 1, 200);
  at::Tensor rgb = read_image(grey, 3);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{4, 5, 3}));
  EXPECT_EQ(rgb[2][3][1].item<uint8_t>(), 200);
  const std::string colour = write_png("colour.png", 6, 6, 3, 90);
  EXPECT_EQ(read_image(colour, 1).sizes(), (std::vector<int64_t>{6, 6, 1}));
}

TEST(ImageTest, PreprocessFollowsZooMetadata) {
  zoo::MobileNetV1Options o;
  o.input = 32;
  o.alpha = 0.25;
  const ir::Graph g = zoo::mobilenet_v1(o);
  const Preprocess p = Preprocess::from_metadata(g, "m.onnx");
  EXPECT_EQ(p.height, 32);
  EXPECT_EQ(p.channels, 3);
  at::Tensor x = preprocess(read_image(write_png("flat.png", 20, 10, 3, 255), 3), p);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{3, 32, 32}));
  EXPECT_NEAR(x.min().item<float>(), 1.0f, 1e-5);  // Keras "tf" mode: 255 -> 1
  EXPECT_NEAR(x.max().item<float>(), 1.0f, 1e-5);
}

// Keras' "caffe" mode: BGR order, ImageNet means subtracted, no scaling.
TEST(ImageTest, CaffeModeSwapsToBgr) {
  ir::Graph g;
  g.set_metadata("graft.preprocess",
                 R"({"size": [2, 2], "channels": 3, "scale": 1.0, "channel_order": "BGR",
                     "mean": [103.939, 116.779, 123.68], "std": [1, 1, 1]})");
  const Preprocess p = Preprocess::from_metadata(g, "m.onnx");
  EXPECT_TRUE(p.bgr);
  at::Tensor rgb = at::zeros({2, 2, 3}, at::kByte);
  rgb.select(2, 0).fill_(10);  // R
  rgb.select(2, 2).fill_(200);  // B
  const at::Tensor x = preprocess(rgb, p);
  EXPECT_NEAR(x[0][0][0].item<float>(), 200 - 103.939, 1e-4);  // channel 0 is blue
  EXPECT_NEAR(x[2][0][0].item<float>(), 10 - 123.68, 1e-4);
  const at::Tensor b = preprocess_batch(rgb.unsqueeze(0), p);
  EXPECT_TRUE(at::allclose(b[0], x));
  g.set_metadata("graft.preprocess", R"({"size": [2, 2], "channels": 3, "channel_order": "GBR"})");
  EXPECT_THROW(Preprocess::from_metadata(g, "m.onnx"), Error);
}

TEST(ImageTest, ImageFolderDataset) {
  const std::string root = ::testing::TempDir() + "/folder_ds";
  std::filesystem::remove_all(root);
  for (const char* cls : {"cat", "dog"}) std::filesystem::create_directories(root + "/train/" + cls);
  auto put = [&](const std::string& rel, int w, int h, unsigned char v) {
    std::vector<unsigned char> px(static_cast<size_t>(w * h * 3), v);
    stbi_write_png((root + "/train/" + rel).c_str(), w, h, 3, px.data(), w * 3);
  };
  put("cat/a.png", 6, 4, 10);
  put("cat/b.png", 6, 4, 20);
  put("dog/c.png", 12, 8, 30);  // another size: resized to the first image's
  Dataset d = open_dataset(root, "train");
  EXPECT_EQ(d.classes, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(d.images.sizes(), (std::vector<int64_t>{3, 4, 6, 3}));
  EXPECT_TRUE(d.labels.equal(at::tensor(std::vector<int64_t>{0, 0, 1})));
  EXPECT_EQ(d.images[2][1][1][0].item<uint8_t>(), 30);
  std::ofstream(root + "/train/dog/broken.png") << "\x89PNG garbage";
  try {
    open_dataset(root, "train");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(root);
}

TEST(ImageTest, BadImagesAndMissingMetadataAreErrors) {
  const std::string path = ::testing::TempDir() + "/broken.png";
  {
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fputs("\x89PNG\r\n\x1a\n garbage", f);
    std::fclose(f);
  }
  try {
    read_image(path, 3);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("broken.png"), std::string::npos);
  }
  ir::Graph g = zoo::mobilenet_v1({});
  g.erase_metadata("graft.preprocess");
  EXPECT_THROW(Preprocess::from_metadata(g, "m.onnx"), Error);
}

}  // namespace
}  // namespace graft::data

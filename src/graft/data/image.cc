#include "graft/data/image.h"

#include <ATen/ATen.h>

#include <limits>
#include <nlohmann/json.hpp>

#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "graft/core/error.h"
#include "graft/core/file.h"
#include "graft/ir/metadata.h"

namespace graft::data {

Preprocess Preprocess::from_metadata(const ir::Graph& graph, const std::string& model) {
  auto text = graph.get_metadata(ir::kMetaPreprocess);
  if (!text) {
    throw Error(model + ": has no graft.preprocess metadata, so graft does not know how to "
                "prepare images for it; pass tensors with --input x.npy instead");
  }
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  Preprocess p;
  try {
    p.height = j.at("size").at(0).get<int64_t>();
    p.width = j.at("size").at(1).get<int64_t>();
    p.channels = j.at("channels").get<int64_t>();
    p.scale = j.value("scale", 1.0 / 255.0);
    p.mean = j.value("mean", std::vector<double>(static_cast<size_t>(p.channels), 0.0));
    p.std = j.value("std", std::vector<double>(static_cast<size_t>(p.channels), 1.0));
    const std::string order = j.value("channel_order", "RGB");
    if (order != "RGB" && order != "BGR") throw std::invalid_argument("channel_order must be RGB or BGR");
    p.bgr = order == "BGR" && p.channels == 3;
  } catch (const std::exception& e) {
    throw Error(model + ": malformed graft.preprocess metadata: " + e.what());
  }
  if (p.height < 1 || p.width < 1 || (p.channels != 1 && p.channels != 3) ||
      p.mean.size() != static_cast<size_t>(p.channels) || p.std.size() != static_cast<size_t>(p.channels)) {
    throw Error(model + ": graft.preprocess needs a positive size, 1 or 3 channels and one mean "
                "and std per channel");
  }
  return p;
}

std::string encode_png(const at::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != at::kByte) {
    throw Error("encode_png needs an (H, W, C) uint8 image, not " + c10::str(image.sizes()), ErrorKind::kInternal);
  }
  const at::Tensor pixels = image.contiguous();
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int w = static_cast<int>(pixels.size(1)), h = static_cast<int>(pixels.size(0)), c = static_cast<int>(pixels.size(2));
  if (!stbi_write_png_to_func(append, &png, w, h, c, pixels.data_ptr<uint8_t>(), w * c)) {
    throw Error("PNG encoding of a " + c10::str(image.sizes()) + " image failed", ErrorKind::kInternal);
  }
  return png;
}

at::Tensor read_image(const std::string& path, int64_t channels) {
  return decode_image(read_file(path), channels, path);
}

at::Tensor decode_image(const std::string& bytes, int64_t channels, const std::string& path) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw Error(path + ": image of " + std::to_string(bytes.size()) + " bytes is too large to decode (2 GiB at most)");
  }
  int w = 0, h = 0, n = 0;
  unsigned char* pixels = stbi_load_from_memory(reinterpret_cast<const unsigned char*>(bytes.data()),
                                                static_cast<int>(bytes.size()), &w, &h, &n,
                                                static_cast<int>(channels));
  if (pixels == nullptr) {
    throw Error(path + ": cannot decode image (" + stbi_failure_reason() + ")");
  }
  at::Tensor t = at::empty({h, w, channels}, at::kByte);
  if (h > 0 && w > 0) std::memcpy(t.data_ptr(), pixels, static_cast<size_t>(h) * w * channels);
  stbi_image_free(pixels);
  return t;
}

at::Tensor preprocess(const at::Tensor& image, const Preprocess& p) {
  at::Tensor x = image.permute({2, 0, 1}).to(at::kFloat).unsqueeze(0);
  if (p.bgr && x.size(1) == 3) x = x.flip({1});
  if (x.size(2) != p.height || x.size(3) != p.width) {
    x = at::upsample_bilinear2d(x, {p.height, p.width}, /*align_corners=*/false);
  }
  at::Tensor mean = at::tensor(p.mean, at::kDouble).to(at::kFloat).reshape({1, -1, 1, 1});
  at::Tensor std = at::tensor(p.std, at::kDouble).to(at::kFloat).reshape({1, -1, 1, 1});
  return ((x * p.scale - mean) / std).squeeze(0);
}

}  // namespace graft::data

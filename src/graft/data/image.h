// Images (PNG, JPEG, BMP, …) and the preprocessing a model's graft.preprocess metadata asks for.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::data {

// What a model expects of an image (graft.preprocess): size, channels, and a pixel p in
// [0, 255] becoming (p * scale - mean[c]) / std[c], with the colour channels in BGR order when
// `bgr` (graft.preprocess "channel_order": "BGR", Keras' "caffe" mode).
struct Preprocess {
  int64_t height = 0, width = 0, channels = 0;
  double scale = 1.0 / 255.0;
  std::vector<double> mean, std;
  bool bgr = false;

  // Throws Error naming the model if the metadata is missing or malformed.
  static Preprocess from_metadata(const ir::Graph& graph, const std::string& model);
};

// Decodes an image file to (H, W, channels) uint8; 1-channel images are replicated to 3 and
// colour images converted to grey (luma) as `channels` asks. Error names the file.
at::Tensor read_image(const std::string& path, int64_t channels);
// The same for an image file's bytes; `origin` names them in errors.
at::Tensor decode_image(const std::string& bytes, int64_t channels, const std::string& origin);

// (H, W, C) uint8 -> the bytes of a PNG file of it (stb's encoder; what an image costs to send
// as a file, for comparison with the split tensor).
std::string encode_png(const at::Tensor& image);

// (H, W, C) uint8 -> (C, height, width) float32: bilinear resize, then scale, mean and std.
at::Tensor preprocess(const at::Tensor& image, const Preprocess& p);

}  // namespace graft::data

// graft::zoo — the architectures of the canonical example, built in code with tf.keras' layer
// names and order, randomly initialised (Keras defaults) from a seed, as ir::Graph in NCHW.
//
// Both record their input preprocessing (graft.preprocess: Keras "tf" mode, x / 127.5 - 1) and
// their options (graft.architecture) in metadata.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::zoo {

struct MobileNetV1Options {
  double alpha = 1.0;       // width multiplier: 0.25, 0.5, 0.75 or 1.0
  int64_t input = 224;      // square input size, >= 32
  int64_t channels = 3;
  int64_t classes = 1000;
  bool include_top = true;  // false: ends at conv_pw_13_relu
  float dropout = 1e-3f;
  uint64_t seed = 0;
};

struct InceptionResNetV2Options {
  int64_t input = 299;      // square input size, >= 75
  int64_t channels = 3;
  int64_t classes = 1000;
  bool include_top = true;  // false: ends at conv_7b_ac
  double width = 1.0;       // channel multiplier for small variants (Keras has none: 1.0)
  std::array<int, 3> repeats{10, 20, 10};  // block35, block17, block8 counts
  uint64_t seed = 0;
};

ir::Graph mobilenet_v1(const MobileNetV1Options& options);
ir::Graph inception_resnet_v2(const InceptionResNetV2Options& options);

// The zoo's model names, for the CLI and error messages.
std::vector<std::string> model_names();

}  // namespace graft::zoo

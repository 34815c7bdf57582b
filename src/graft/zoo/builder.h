// A Keras-flavoured builder of ir::Graph, used by the zoo architectures.
//
// Each layer call appends the ONNX node(s) of one Keras layer. Layers left unnamed get the
// names a fresh Keras session would give (conv2d, conv2d_1, …, batch_normalization_N, …).
// Padding "same" is TensorFlow's (extra padding at the bottom/right), written as explicit pads.
// Weights start as Keras' defaults: Glorot-uniform kernels, zero biases, BatchNormalization
// gamma 1, beta 0, moving mean 0, moving variance 1.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Generator.h>

#include "graft/ir/graph.h"

namespace graft::zoo {

// An activation in the graph: its tensor name and its shape without the batch dimension
// ({C, H, W} for images, {C} after flattening).
struct Act {
  std::string name;
  std::vector<int64_t> dims;
  int64_t c() const { return dims.at(0); }
  int64_t h() const { return dims.at(1); }
  int64_t w() const { return dims.at(2); }
};

enum class Padding { kSame, kValid };

struct Size2 {
  int64_t h, w;
  Size2(int64_t both) : h(both), w(both) {}  // NOLINT: 3 means 3x3, as in Keras
  Size2(int64_t h_, int64_t w_) : h(h_), w(w_) {}
};

class Builder {
 public:
  Builder(std::string graph_name, uint64_t seed);

  Act input(const std::string& name, int64_t channels, int64_t height, int64_t width);

  Act conv2d(const Act& x, int64_t filters, Size2 kernel, Size2 strides, Padding padding,
             bool use_bias, const std::string& name = "");
  Act depthwise_conv2d(const Act& x, Size2 kernel, Size2 strides, Padding padding,
                       const std::string& name = "");
  // scale=false is Keras' BatchNormalization(scale=False): gamma is the constant 1.
  Act batch_norm(const Act& x, bool scale, const std::string& name = "");
  Act relu(const Act& x, const std::string& name = "");       // Keras Activation('relu')
  Act relu6(const Act& x, const std::string& name);           // Keras ReLU(6.): Clip(0, 6)
  Act softmax(const Act& x, const std::string& name = "");
  Act zero_padding2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                     const std::string& name = "");
  Act max_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                    const std::string& name = "");
  Act average_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                        const std::string& name = "");
  Act global_average_pooling2d(const Act& x, bool keepdims, const std::string& name = "");
  Act dropout(const Act& x, float rate, const std::string& name = "");
  Act concatenate(const std::vector<Act>& xs, const std::string& name = "");
  Act flatten(const Act& x, const std::string& name);
  Act dense(const Act& x, int64_t units, const std::string& name = "");
  // Keras' Lambda(x + scale * up) of the Inception-ResNet blocks: Mul "<name>/scale", Add.
  Act scaled_residual(const Act& x, const Act& up, float scale, const std::string& name);

  // Finishes the graph with `output` as its only output; records the constants list.
  ir::Graph finish(const Act& output);

 private:
  std::string layer_name(const std::string& given, const std::string& keras_base);
  ir::Node& add_node(const std::string& name, const std::string& op,
                     std::vector<std::string> inputs, const std::string& output);
  std::string add_initializer(const std::string& name, at::Tensor value, bool constant = false);
  at::Tensor glorot_uniform(std::vector<int64_t> sizes, int64_t fan_in, int64_t fan_out);
  std::vector<int64_t> same_pads(const Act& x, Size2 kernel, Size2 strides) const;
  Act spatial(const Act& x, const std::string& name, int64_t channels, Size2 kernel, Size2 strides,
              const std::vector<int64_t>& pads) const;

  ir::Graph graph_;
  std::map<std::string, int> name_counts_;
  std::vector<std::string> constants_;
  at::Generator rng_;
};

}  // namespace graft::zoo

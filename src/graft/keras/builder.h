// graft::keras — Keras layers as ir nodes with Keras semantics.
//
// Builder appends the ONNX node(s) of one Keras layer per call, in NCHW: a Keras image tensor
// (batch, H, W, C) is graft's (batch, C, H, W); tensors of other ranks keep Keras' axis order.
// A layer that is one ONNX op is one node named as the layer; a layer that needs several ops
// (Conv2D with an activation, the scaled residual, Dense + softmax, a Flatten of an image) names
// its helper nodes "<layer>/<part>" and its last node as the layer, so summaries show one row
// per Keras layer (ir/summary.h). Layers left unnamed get the names a fresh Keras session gives
// (conv2d, conv2d_1, …). Padding "same" is TensorFlow's (extra at the bottom/right), written as
// explicit pads. Weights start as Keras initialises them (Glorot-uniform kernels, zero biases,
// BatchNormalization gamma 1, beta 0, moving mean 0, variance 1); each layer records its
// weights in Keras' order and layout (layer_weights()), so an importer can assign real ones.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::keras {

// An activation in the graph: its tensor name and its shape without the batch dimension, in
// graft's layout ({C, H, W} for images, Keras' order otherwise).
struct Act {
  std::string name;
  std::vector<int64_t> dims;
  bool image() const { return dims.size() == 3; }
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

// One weight of a Keras layer as Keras stores it, and where it goes in the graph.
struct Weight {
  std::string initializer;           // graph initializer it becomes
  std::vector<int64_t> keras_shape;  // the array Keras saves
  // Keras layout -> graph layout (permute/reshape); identity when empty.
  std::function<at::Tensor(const at::Tensor&)> convert;
};

struct LayerRecord {
  std::string name, class_name;
  std::vector<Weight> weights;  // Keras' order: trainable first, then non-trainable
};

struct ConvOptions {
  int64_t filters = 0;
  Size2 kernel = 1;
  Size2 strides = 1;
  Size2 dilation = 1;
  Padding padding = Padding::kValid;
  int64_t groups = 1;
  bool use_bias = true;
  std::string activation = "linear";
};

struct BatchNormOptions {
  bool center = true, scale = true;
  float epsilon = 1e-3f, momentum = 0.99f;
};

class Builder {
 public:
  Builder(std::string graph_name, uint64_t seed);

  // Keras 2's hard_sigmoid is clip(0.2x + 0.5); Keras 3's is relu6(x + 3) / 6.
  void set_keras3(bool keras3) { keras3_ = keras3; }

  // An image input (C, H, W), or a non-image input of the given per-sample Keras shape.
  Act input(const std::string& name, int64_t channels, int64_t height, int64_t width);
  Act input_tensor(const std::string& name, const std::vector<int64_t>& keras_dims);

  Act conv2d(const Act& x, const ConvOptions& o, const std::string& name = "");
  // The zoo's spelling of the common case.
  Act conv2d(const Act& x, int64_t filters, Size2 kernel, Size2 strides, Padding padding,
             bool use_bias, const std::string& name = "");
  Act depthwise_conv2d(const Act& x, const ConvOptions& o, int64_t depth_multiplier,
                       const std::string& name = "");
  Act depthwise_conv2d(const Act& x, Size2 kernel, Size2 strides, Padding padding,
                       const std::string& name = "");
  Act separable_conv2d(const Act& x, const ConvOptions& o, int64_t depth_multiplier,
                       const std::string& name = "");
  Act conv2d_transpose(const Act& x, const ConvOptions& o, std::vector<int64_t> output_padding,
                       const std::string& name = "");
  Act dense(const Act& x, int64_t units, const std::string& activation = "linear",
            bool use_bias = true, const std::string& name = "");

  Act batch_norm(const Act& x, const BatchNormOptions& o, const std::string& name = "");
  // scale=false is Keras' BatchNormalization(scale=False): gamma is the constant 1.
  Act batch_norm(const Act& x, bool scale, const std::string& name = "");
  Act layer_norm(const Act& x, float epsilon, bool center, bool scale, const std::string& name);

  // Keras activation strings (relu, relu6, sigmoid, hard_sigmoid, swish/silu, hard_swish,
  // gelu, tanh, softmax, elu, leaky_relu, linear); Error naming the layer for others.
  Act activation(const Act& x, const std::string& kind, const std::string& name = "");
  Act relu(const Act& x, const std::string& name = "");       // Keras Activation('relu')
  Act relu6(const Act& x, const std::string& name);           // Keras ReLU(6.): Clip(0, 6)
  // Keras' ReLU layer: max_value < 0 means none.
  Act relu_layer(const Act& x, float max_value, float negative_slope, float threshold,
                 const std::string& name);
  Act leaky_relu(const Act& x, float alpha, const std::string& name);
  Act elu(const Act& x, float alpha, const std::string& name);
  Act prelu(const Act& x, const std::vector<int64_t>& shared_axes, const std::string& name);
  Act softmax(const Act& x, const std::string& name = "", int64_t keras_axis = -1);

  Act zero_padding2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                     const std::string& name = "");
  Act cropping2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                 const std::string& name);
  Act upsampling2d(const Act& x, Size2 size, const std::string& interpolation,
                   const std::string& name);
  Act max_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                    const std::string& name = "");
  Act average_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                        const std::string& name = "");
  Act global_average_pooling2d(const Act& x, bool keepdims, const std::string& name = "");
  Act global_max_pooling2d(const Act& x, bool keepdims, const std::string& name);

  // Merges: "add", "subtract", "multiply", "average", "maximum", "minimum".
  Act merge(const std::vector<Act>& xs, const std::string& kind, const std::string& name);
  Act concatenate(const std::vector<Act>& xs, const std::string& name = "", int64_t keras_axis = -1);

  Act dropout(const Act& x, float rate, const std::string& name = "");
  Act identity(const Act& x, const std::string& name);
  Act flatten(const Act& x, const std::string& name);
  Act reshape(const Act& x, const std::vector<int64_t>& keras_target, const std::string& name);
  Act permute(const Act& x, const std::vector<int64_t>& keras_dims, const std::string& name);
  Act rescaling(const Act& x, const std::vector<float>& scale, const std::vector<float>& offset,
                const std::string& name);
  // Keras' Normalization: (x - mean) / max(sqrt(variance), 1e-7) over the last axis; mean and
  // variance are weights (from the config when it has them).
  Act normalization(const Act& x, const std::vector<float>& mean,
                    const std::vector<float>& variance, const std::string& name);
  // tf.keras' TFOpLambda for an elementwise function of x: "Add", "Sub", "Mul" or "Div" with
  // `other` (same shape) or, when other is null, the scalar y; or an activation string.
  Act tf_op(const Act& x, const std::string& op, const Act* other, float y, const std::string& name);
  // Keras' Lambda(x + scale * up) of the Inception-ResNet blocks: Mul "<name>/scale", Add.
  Act scaled_residual(const Act& x, const Act& up, float scale, const std::string& name);

  // Finishes the graph with the given outputs; records the constants list.
  ir::Graph finish(const std::vector<Act>& outputs);
  ir::Graph finish(const Act& output) { return finish(std::vector<Act>{output}); }

  // Every layer built so far, in call order, with its weights.
  const std::vector<LayerRecord>& layers() const { return layers_; }
  // Replaces an initializer (used by importers to assign a layer's saved weights).
  void set_initializer(const std::string& name, at::Tensor value);

  // The name Keras would give the next unnamed layer of this kind ("conv2d", "conv2d_1", …).
  std::string layer_name(const std::string& given, const std::string& keras_base);

 private:
  ir::Node& add_node(const std::string& name, const std::string& op,
                     std::vector<std::string> inputs, const std::string& output);
  std::string add_initializer(const std::string& name, at::Tensor value, bool constant = false);
  std::string add_weight(LayerRecord& layer, const std::string& suffix, at::Tensor value,
                         std::vector<int64_t> keras_shape,
                         std::function<at::Tensor(const at::Tensor&)> convert = {});
  std::string constant(const std::string& name, at::Tensor value);
  LayerRecord& begin_layer(const std::string& name, const std::string& class_name);
  at::Tensor glorot_uniform(std::vector<int64_t> sizes, int64_t fan_in, int64_t fan_out);
  std::vector<int64_t> same_pads(const Act& x, Size2 kernel, Size2 strides, Size2 dilation) const;
  std::vector<int64_t> pads_for(const Act& x, Padding p, Size2 kernel, Size2 strides,
                                Size2 dilation = 1) const;
  Act spatial(const Act& x, const std::string& name, int64_t channels, Size2 kernel, Size2 strides,
              const std::vector<int64_t>& pads, Size2 dilation = 1) const;
  void set_conv_attributes(ir::Node& n, Size2 kernel, Size2 strides, Size2 dilation,
                           const std::vector<int64_t>& pads, int64_t group);
  // The node name for a layer's main op: the layer's own name, or "<name>/<part>" when an
  // activation node follows and takes the name.
  static std::string main_name(const std::string& name, const std::string& activation,
                               const std::string& part);
  // The node(s) of an activation function applied to x, the last one named `name`; no layer
  // record (the caller's layer owns them).
  Act activation_nodes(const Act& x, const std::string& kind, const std::string& name);
  // Graph axis of a Keras axis of x (negative counts from the end, batch is axis 0).
  static int64_t graph_axis(const Act& x, int64_t keras_axis, const std::string& layer);
  // The name of x as an NHWC tensor (a Transpose helper) when it is an image, of x otherwise.
  std::string to_keras_layout(const Act& x, const std::string& helper);
  void require_image(const Act& x, const std::string& name, const std::string& class_name) const;
  void use_opset(int64_t version);
  // The grouped Conv of a depthwise convolution, its kernel (and bias) weights of `layer`.
  Act depthwise_node(LayerRecord& layer, const Act& x, const ConvOptions& o, int64_t multiplier,
                     const std::string& node, bool bias);
  Act pooling2d(const Act& x, bool max, Size2 pool, Size2 strides, Padding padding,
                const std::string& name);

  ir::Graph graph_;
  std::map<std::string, int> name_counts_;
  std::vector<std::string> constants_;
  std::vector<LayerRecord> layers_;
  std::map<std::string, int64_t> extra_params_;  // graft.extra_params
  at::Generator rng_;
  bool keras3_ = false;
};

}  // namespace graft::keras

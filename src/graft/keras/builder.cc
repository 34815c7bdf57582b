// Builder infrastructure and the layers with weights: convolutions, Dense, normalisation.
#include "graft/keras/builder.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <cmath>

#include "graft/core/error.h"
#include "graft/ir/metadata.h"

#include <nlohmann/json.hpp>

namespace graft::keras {
namespace {

int64_t out_size(int64_t in, int64_t extent, int64_t s, int64_t pad_total) {
  return (in + pad_total - extent) / s + 1;
}

// Keras HWIO conv kernels (kh, kw, in, out) -> ONNX OIHW.
at::Tensor hwio_to_oihw(const at::Tensor& t) { return t.permute({3, 2, 0, 1}).contiguous(); }

// Keras' depthwise kernel (kh, kw, C, M) -> a grouped Conv's (C*M, 1, kh, kw): output channel
// c*M + m, as TensorFlow orders them.
std::function<at::Tensor(const at::Tensor&)> depthwise_to_grouped(int64_t c, int64_t m, int64_t kh, int64_t kw) {
  return [c, m, kh, kw](const at::Tensor& t) {
    return t.permute({2, 3, 0, 1}).reshape({c * m, 1, kh, kw}).contiguous();
  };
}

}  // namespace

Builder::Builder(std::string graph_name, uint64_t seed)
    : rng_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  graph_.name = std::move(graph_name);
  graph_.opset_imports = {{"", 13}};
  graph_.ir_version = 7;  // what opset 13 exporters write; read by every current runtime
}

void Builder::use_opset(int64_t version) {
  if (graph_.opset_imports[0].version < version) {
    graph_.opset_imports[0].version = version;
    graph_.ir_version = 8;
  }
}

std::string Builder::layer_name(const std::string& given, const std::string& keras_base) {
  if (!given.empty()) return given;
  const int n = name_counts_[keras_base]++;
  return n == 0 ? keras_base : keras_base + "_" + std::to_string(n);
}

LayerRecord& Builder::begin_layer(const std::string& name, const std::string& class_name) {
  layers_.push_back({name, class_name, {}});
  return layers_.back();
}

ir::Node& Builder::add_node(const std::string& name, const std::string& op,
                            std::vector<std::string> inputs, const std::string& output) {
  if (graph_.has_value(output) || graph_.find_node(name) >= 0) {
    throw Error("layer name '" + name + "' is used twice");
  }
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(inputs);
  n.outputs = {output};
  graph_.nodes.push_back(std::move(n));
  return graph_.nodes.back();
}

std::string Builder::add_initializer(const std::string& name, at::Tensor value, bool constant) {
  if (!graph_.initializers.emplace(name, std::move(value)).second) {
    throw Error("weight '" + name + "' is defined twice (two layers with one name?)");
  }
  if (constant) constants_.push_back(name);
  return name;
}

std::string Builder::constant(const std::string& name, at::Tensor value) {
  const bool tensor = value.numel() > 1 && value.is_floating_point();
  return add_initializer(name, std::move(value), tensor);
}

std::string Builder::add_weight(LayerRecord& layer, const std::string& suffix, at::Tensor value,
                                std::vector<int64_t> keras_shape,
                                std::function<at::Tensor(const at::Tensor&)> convert) {
  const std::string name = add_initializer(layer.name + "/" + suffix, std::move(value));
  layer.weights.push_back({name, std::move(keras_shape), std::move(convert)});
  return name;
}

void Builder::set_initializer(const std::string& name, at::Tensor value) {
  auto it = graph_.initializers.find(name);
  if (it == graph_.initializers.end()) throw Error("no weight '" + name + "'", ErrorKind::kInternal);
  it->second = std::move(value);
}

at::Tensor Builder::glorot_uniform(std::vector<int64_t> sizes, int64_t fan_in, int64_t fan_out) {
  const double limit = std::sqrt(6.0 / static_cast<double>(std::max<int64_t>(fan_in + fan_out, 1)));
  at::Tensor t = at::zeros(sizes, at::kFloat);
  t.uniform_(-limit, limit, rng_);
  return t;
}

std::vector<int64_t> Builder::same_pads(const Act& x, Size2 kernel, Size2 strides,
                                        Size2 dilation) const {
  auto pad = [](int64_t in, int64_t k, int64_t s) {
    const int64_t out = (in + s - 1) / s;
    return std::max<int64_t>((out - 1) * s + k - in, 0);
  };
  const int64_t ph = pad(x.h(), (kernel.h - 1) * dilation.h + 1, strides.h);
  const int64_t pw = pad(x.w(), (kernel.w - 1) * dilation.w + 1, strides.w);
  return {ph / 2, pw / 2, ph - ph / 2, pw - pw / 2};  // ONNX order: begins, then ends
}

std::vector<int64_t> Builder::pads_for(const Act& x, Padding p, Size2 kernel, Size2 strides,
                                       Size2 dilation) const {
  return p == Padding::kSame ? same_pads(x, kernel, strides, dilation)
                             : std::vector<int64_t>{0, 0, 0, 0};
}

Act Builder::spatial(const Act& x, const std::string& name, int64_t channels, Size2 kernel,
                     Size2 strides, const std::vector<int64_t>& pads, Size2 dilation) const {
  const int64_t h = out_size(x.h(), (kernel.h - 1) * dilation.h + 1, strides.h, pads[0] + pads[2]);
  const int64_t w = out_size(x.w(), (kernel.w - 1) * dilation.w + 1, strides.w, pads[1] + pads[3]);
  if (h < 1 || w < 1) {
    throw Error("layer '" + name + "' would shrink " + std::to_string(x.h()) + "x" +
                std::to_string(x.w()) + " to nothing; use a larger input");
  }
  return {name, {channels, h, w}};
}

void Builder::require_image(const Act& x, const std::string& name,
                            const std::string& class_name) const {
  if (!x.image()) {
    throw Error("layer '" + name + "' (" + class_name + ") needs an image input (H, W, C), got " +
                std::to_string(x.dims.size()) + " dimensions per sample");
  }
}

void Builder::set_conv_attributes(ir::Node& n, Size2 kernel, Size2 strides, Size2 dilation,
                                  const std::vector<int64_t>& pads, int64_t group) {
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {kernel.h, kernel.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  n.attributes.set(ir::Attribute::of_ints("dilations", {dilation.h, dilation.w}));
  n.attributes.set(ir::Attribute::of_int("group", group));
}

std::string Builder::main_name(const std::string& name, const std::string& activation,
                               const std::string& part) {
  return activation == "linear" ? name : name + "/" + part;
}

Act Builder::input(const std::string& name, int64_t channels, int64_t height, int64_t width) {
  graph_.inputs.push_back(name);
  ir::Value& v = graph_.values[name];
  v.name = name;
  v.dtype = ir::kFloat;
  v.shape = ir::Shape{ir::Dim(std::string("N")), channels, height, width};
  begin_layer(name, "InputLayer");
  return {name, {channels, height, width}};
}

Act Builder::input_tensor(const std::string& name, const std::vector<int64_t>& keras_dims) {
  if (keras_dims.size() == 3) return input(name, keras_dims[2], keras_dims[0], keras_dims[1]);
  graph_.inputs.push_back(name);
  ir::Value& v = graph_.values[name];
  v.name = name;
  v.dtype = ir::kFloat;
  v.shape = ir::Shape{ir::Dim(std::string("N"))};
  for (int64_t d : keras_dims) v.shape->push_back(d);
  begin_layer(name, "InputLayer");
  return {name, keras_dims};
}

Act Builder::conv2d(const Act& x, int64_t filters, Size2 kernel, Size2 strides, Padding padding,
                    bool use_bias, const std::string& name) {
  ConvOptions o;
  o.filters = filters;
  o.kernel = kernel;
  o.strides = strides;
  o.padding = padding;
  o.use_bias = use_bias;
  return conv2d(x, o, name);
}

Act Builder::conv2d(const Act& x, const ConvOptions& o, const std::string& given) {
  const std::string name = layer_name(given, "conv2d");
  require_image(x, name, "Conv2D");
  if (o.groups < 1 || x.c() % o.groups || o.filters % o.groups) {
    throw Error("layer '" + name + "' (Conv2D): groups=" + std::to_string(o.groups) +
                " must divide the input channels (" + std::to_string(x.c()) + ") and filters (" +
                std::to_string(o.filters) + ")");
  }
  LayerRecord& layer = begin_layer(name, "Conv2D");
  const int64_t cin = x.c() / o.groups, kh = o.kernel.h, kw = o.kernel.w;
  const std::vector<int64_t> pads = pads_for(x, o.padding, o.kernel, o.strides, o.dilation);
  std::vector<std::string> inputs{
      x.name, add_weight(layer, "kernel",
                         glorot_uniform({o.filters, cin, kh, kw}, cin * kh * kw, o.filters * kh * kw),
                         {kh, kw, cin, o.filters}, hwio_to_oihw)};
  if (o.use_bias) {
    inputs.push_back(add_weight(layer, "bias", at::zeros({o.filters}, at::kFloat), {o.filters}));
  }
  const std::string node = main_name(name, o.activation, "conv");
  set_conv_attributes(add_node(node, "Conv", std::move(inputs), node), o.kernel, o.strides,
                      o.dilation, pads, o.groups);
  Act y = spatial(x, node, o.filters, o.kernel, o.strides, pads, o.dilation);
  return o.activation == "linear" ? y : activation_nodes(y, o.activation, name);
}

Act Builder::depthwise_conv2d(const Act& x, Size2 kernel, Size2 strides, Padding padding,
                              const std::string& name) {
  ConvOptions o;
  o.kernel = kernel;
  o.strides = strides;
  o.padding = padding;
  o.use_bias = false;
  return depthwise_conv2d(x, o, 1, name);
}

Act Builder::depthwise_node(LayerRecord& layer, const Act& x, const ConvOptions& o, int64_t multiplier,
                            const std::string& node, bool bias) {
  const int64_t c = x.c(), kh = o.kernel.h, kw = o.kernel.w, out = c * multiplier;
  const std::vector<int64_t> pads = pads_for(x, o.padding, o.kernel, o.strides, o.dilation);
  std::vector<std::string> inputs{
      x.name, add_weight(layer, "depthwise_kernel",
                         glorot_uniform({out, 1, kh, kw}, kh * kw * c, kh * kw * multiplier),
                         {kh, kw, c, multiplier}, depthwise_to_grouped(c, multiplier, kh, kw))};
  if (bias) inputs.push_back(add_weight(layer, "bias", at::zeros({out}, at::kFloat), {out}));
  set_conv_attributes(add_node(node, "Conv", std::move(inputs), node), o.kernel, o.strides,
                      o.dilation, pads, c);
  return spatial(x, node, out, o.kernel, o.strides, pads, o.dilation);
}

Act Builder::depthwise_conv2d(const Act& x, const ConvOptions& o, int64_t multiplier,
                              const std::string& given) {
  const std::string name = layer_name(given, "depthwise_conv2d");
  require_image(x, name, "DepthwiseConv2D");
  LayerRecord& layer = begin_layer(name, "DepthwiseConv2D");
  Act y = depthwise_node(layer, x, o, multiplier, main_name(name, o.activation, "conv"), o.use_bias);
  return o.activation == "linear" ? y : activation_nodes(y, o.activation, name);
}

Act Builder::separable_conv2d(const Act& x, const ConvOptions& o, int64_t multiplier,
                              const std::string& given) {
  const std::string name = layer_name(given, "separable_conv2d");
  require_image(x, name, "SeparableConv2D");
  LayerRecord& layer = begin_layer(name, "SeparableConv2D");
  const Act d = depthwise_node(layer, x, o, multiplier, name + "/depthwise", /*bias=*/false);
  const int64_t mid = d.c();
  const std::string pw = add_weight(layer, "pointwise_kernel",
                                    glorot_uniform({o.filters, mid, 1, 1}, mid, o.filters),
                                    {1, 1, mid, o.filters}, hwio_to_oihw);
  std::vector<std::string> inputs{d.name, pw};
  if (o.use_bias) {
    inputs.push_back(add_weight(layer, "bias", at::zeros({o.filters}, at::kFloat), {o.filters}));
  }
  const std::string node = main_name(name, o.activation, "pointwise");
  set_conv_attributes(add_node(node, "Conv", std::move(inputs), node), 1, 1, 1, {0, 0, 0, 0}, 1);
  Act y{node, {o.filters, d.h(), d.w()}};
  return o.activation == "linear" ? y : activation_nodes(y, o.activation, name);
}

Act Builder::conv2d_transpose(const Act& x, const ConvOptions& o,
                              std::vector<int64_t> output_padding, const std::string& given) {
  const std::string name = layer_name(given, "conv2d_transpose");
  require_image(x, name, "Conv2DTranspose");
  LayerRecord& layer = begin_layer(name, "Conv2DTranspose");
  const int64_t kh = o.kernel.h, kw = o.kernel.w;
  // Keras' transposed kernel is (kh, kw, out, in); ONNX's ConvTranspose weight (in, out, kh, kw).
  std::vector<std::string> inputs{
      x.name, add_weight(layer, "kernel",
                         glorot_uniform({x.c(), o.filters, kh, kw}, o.filters * kh * kw, x.c() * kh * kw),
                         {kh, kw, o.filters, x.c()}, hwio_to_oihw)};
  if (o.use_bias) {
    inputs.push_back(add_weight(layer, "bias", at::zeros({o.filters}, at::kFloat), {o.filters}));
  }
  // Output sizes and paddings as Keras' conv_utils.deconv_output_length computes them.
  const int64_t size[2] = {x.h(), x.w()}, k[2] = {(kh - 1) * o.dilation.h + 1, (kw - 1) * o.dilation.w + 1};
  const int64_t s[2] = {o.strides.h, o.strides.w};
  std::vector<int64_t> out(2), begin(2), end(2), extra(2, 0);
  for (int i = 0; i < 2; ++i) {
    const bool has_op = output_padding.size() == 2;
    if (o.padding == Padding::kValid) {
      out[i] = has_op ? (size[i] - 1) * s[i] + k[i] + output_padding[i]
                      : size[i] * s[i] + std::max<int64_t>(k[i] - s[i], 0);
    } else {
      out[i] = has_op ? (size[i] - 1) * s[i] + output_padding[i] - 2 * (k[i] / 2) + k[i]
                      : size[i] * s[i];
    }
    // ONNX: out = s*(in-1) + output_padding + k - pad_begin - pad_end.
    const int64_t pad_total = s[i] * (size[i] - 1) + k[i] - out[i];
    if (pad_total >= 0) {
      begin[i] = o.padding == Padding::kSame ? pad_total / 2 : 0;
      end[i] = pad_total - begin[i];
    } else {
      extra[i] = -pad_total;
    }
  }
  const std::string node = main_name(name, o.activation, "conv");
  ir::Node& n = add_node(node, "ConvTranspose", std::move(inputs), node);
  set_conv_attributes(n, o.kernel, o.strides, o.dilation, {begin[0], begin[1], end[0], end[1]}, 1);
  if (extra[0] || extra[1]) n.attributes.set(ir::Attribute::of_ints("output_padding", extra));
  Act y{node, {o.filters, out[0], out[1]}};
  return o.activation == "linear" ? y : activation_nodes(y, o.activation, name);
}

Act Builder::dense(const Act& x, int64_t units, const std::string& activation, bool use_bias,
                   const std::string& given) {
  const std::string name = layer_name(given, "dense");
  LayerRecord& layer = begin_layer(name, "Dense");
  const int64_t in = x.image() ? x.c() : x.dims.back();
  const std::string node = main_name(name, activation, "logits");
  Act y;
  if (x.image()) {
    // On an image Dense acts on the channels of every position: a 1x1 convolution.
    std::vector<std::string> inputs{
        x.name, add_weight(layer, "kernel", glorot_uniform({units, in, 1, 1}, in, units), {in, units},
                           [units, in](const at::Tensor& t) {
                             return t.t().reshape({units, in, 1, 1}).contiguous();
                           })};
    if (use_bias) inputs.push_back(add_weight(layer, "bias", at::zeros({units}, at::kFloat), {units}));
    set_conv_attributes(add_node(node, "Conv", std::move(inputs), node), 1, 1, 1, {0, 0, 0, 0}, 1);
    y = {node, {units, x.h(), x.w()}};
  } else if (x.dims.size() == 1) {
    // Keras' kernel is (in, units); Gemm computes x · kernel + bias with transB = 0.
    std::vector<std::string> inputs{
        x.name, add_weight(layer, "kernel", glorot_uniform({in, units}, in, units), {in, units})};
    if (use_bias) inputs.push_back(add_weight(layer, "bias", at::zeros({units}, at::kFloat), {units}));
    add_node(node, "Gemm", std::move(inputs), node);
    y = {node, {units}};
  } else {
    const std::string kernel =
        add_weight(layer, "kernel", glorot_uniform({in, units}, in, units), {in, units});
    std::vector<int64_t> dims = x.dims;
    dims.back() = units;
    if (use_bias) {
      add_node(name + "/matmul", "MatMul", {x.name, kernel}, name + "/matmul");
      add_node(node, "Add",
               {name + "/matmul", add_weight(layer, "bias", at::zeros({units}, at::kFloat), {units})},
               node);
    } else {
      add_node(node, "MatMul", {x.name, kernel}, node);
    }
    y = {node, dims};
  }
  return activation == "linear" ? y : activation_nodes(y, activation, name);
}

Act Builder::batch_norm(const Act& x, bool scale, const std::string& name) {
  BatchNormOptions o;
  o.scale = scale;
  return batch_norm(x, o, name);
}

Act Builder::batch_norm(const Act& x, const BatchNormOptions& o, const std::string& given) {
  const std::string name = layer_name(given, "batch_normalization");
  if (!x.image() && x.dims.size() != 1) {
    throw Error("layer '" + name + "' (BatchNormalization): graft supports it on images and on "
                "(batch, features), not on " + std::to_string(x.dims.size() + 1) + "-D tensors");
  }
  LayerRecord& layer = begin_layer(name, "BatchNormalization");
  const int64_t c = x.c();
  const std::string gamma = o.scale ? add_weight(layer, "gamma", at::ones({c}, at::kFloat), {c})
                                    : add_initializer(name + "/gamma", at::ones({c}, at::kFloat), true);
  const std::string beta = o.center ? add_weight(layer, "beta", at::zeros({c}, at::kFloat), {c})
                                    : add_initializer(name + "/beta", at::zeros({c}, at::kFloat), true);
  std::vector<std::string> inputs{x.name, gamma, beta,
                                  add_weight(layer, "moving_mean", at::zeros({c}, at::kFloat), {c}),
                                  add_weight(layer, "moving_variance", at::ones({c}, at::kFloat), {c})};
  ir::Node& n = add_node(name, "BatchNormalization", std::move(inputs), name);
  n.attributes.set(ir::Attribute::of_float("epsilon", o.epsilon));
  n.attributes.set(ir::Attribute::of_float("momentum", o.momentum));
  return {name, x.dims};
}

Act Builder::layer_norm(const Act& x, float epsilon, bool center, bool scale,
                        const std::string& given) {
  const std::string name = layer_name(given, "layer_normalization");
  LayerRecord& layer = begin_layer(name, "LayerNormalization");
  use_opset(17);
  const int64_t c = x.image() ? x.c() : x.dims.back();
  if (x.image()) {  // normalise the channels: in NHWC they are the last axis
    add_node(name + "/nhwc", "Transpose", {x.name}, name + "/nhwc")
        .attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  }
  std::vector<std::string> inputs{
      x.image() ? name + "/nhwc" : x.name, scale ? add_weight(layer, "gamma", at::ones({c}, at::kFloat), {c})
                     : add_initializer(name + "/gamma", at::ones({c}, at::kFloat), true)};
  if (center) inputs.push_back(add_weight(layer, "beta", at::zeros({c}, at::kFloat), {c}));
  const std::string node = x.image() ? name + "/norm" : name;
  ir::Node& n = add_node(node, "LayerNormalization", std::move(inputs), node);
  n.attributes.set(ir::Attribute::of_int("axis", -1));
  n.attributes.set(ir::Attribute::of_float("epsilon", epsilon));
  if (!x.image()) return {name, x.dims};
  ir::Node& t = add_node(name, "Transpose", {node}, name);
  t.attributes.set(ir::Attribute::of_ints("perm", {0, 3, 1, 2}));
  return {name, x.dims};
}

Act Builder::normalization(const Act& x, const std::vector<float>& mean,
                           const std::vector<float>& variance, const std::string& given) {
  const std::string name = layer_name(given, "normalization");
  LayerRecord& layer = begin_layer(name, "Normalization");
  const int64_t c = x.image() ? x.c() : x.dims.back();
  if (!mean.empty() && (static_cast<int64_t>(mean.size()) != c || variance.size() != mean.size())) {
    throw Error("layer '" + name + "' (Normalization): mean and variance need " + std::to_string(c) + " values");
  }
  // max(sqrt(v), 1e-7) == sqrt(max(v, 1e-14)).
  auto floor_variance = [](const at::Tensor& v) { return v.clamp_min(1e-14).contiguous(); };
  if (x.image() || x.dims.size() == 1) {
    // On the channels: a BatchNormalization with unit gamma, zero beta and epsilon 0, whose
    // moving statistics are Keras' mean and variance (non-trainable parameters, as in Keras).
    std::vector<std::string> inputs{x.name, add_initializer(name + "/gamma", at::ones({c}, at::kFloat), true),
                                    add_initializer(name + "/beta", at::zeros({c}, at::kFloat), true)};
    if (!mean.empty()) {  // given in the config: constants, as Keras makes them
      inputs.push_back(add_initializer(name + "/mean", at::tensor(mean), true));
      inputs.push_back(add_initializer(name + "/variance", floor_variance(at::tensor(variance)), true));
    } else {
      inputs.push_back(add_weight(layer, "mean", at::zeros({c}, at::kFloat), {c}));
      inputs.push_back(add_weight(layer, "variance", at::ones({c}, at::kFloat), {c}, floor_variance));
      layer.weights.push_back({"", {}, {}});  // Keras' sample count: a parameter, not an operand
      extra_params_[name] = 1;
    }
    ir::Node& n = add_node(name, "BatchNormalization", std::move(inputs), name);
    n.attributes.set(ir::Attribute::of_float("epsilon", 0.0f));
    return {name, x.dims};
  }
  // Other ranks keep Keras' axis order: the last axis broadcasts.
  at::Tensor m = mean.empty() ? at::zeros({c}, at::kFloat) : at::tensor(mean);
  at::Tensor v = mean.empty() ? at::ones({c}, at::kFloat) : floor_variance(at::tensor(variance));
  std::string mn, sd;
  auto as_std = [](const at::Tensor& t) { return t.clamp_min(1e-14).sqrt().contiguous(); };
  if (!mean.empty()) {
    mn = add_initializer(name + "/mean", m, true);
    sd = add_initializer(name + "/std", as_std(v), true);
  } else {
    mn = add_weight(layer, "mean", m, {c});
    sd = add_weight(layer, "std", v, {c}, as_std);
    constants_.push_back(mn);
    constants_.push_back(sd);
    layer.weights.push_back({"", {}, {}});
    extra_params_[name] = 2 * c + 1;
  }
  add_node(name + "/centre", "Sub", {x.name, mn}, name + "/centre");
  add_node(name, "Div", {name + "/centre", sd}, name);
  return {name, x.dims};
}

ir::Graph Builder::finish(const std::vector<Act>& outputs) {
  for (const Act& output : outputs) {
    graph_.outputs.push_back(output.name);
    ir::Value& v = graph_.values[output.name];
    v.name = output.name;
    v.dtype = ir::kFloat;
    v.shape = ir::Shape{ir::Dim(std::string("N"))};
    for (int64_t d : output.dims) v.shape->push_back(d);
  }
  if (!constants_.empty()) ir::set_metadata_string_list(graph_, ir::kMetaConstants, constants_);
  if (!extra_params_.empty()) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [node, n] : extra_params_) j[node] = n;
    graph_.set_metadata(ir::kMetaExtraParams, j.dump());
  }
  graph_.reindex();
  return std::move(graph_);
}

}  // namespace graft::keras

#include "graft/zoo/builder.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>

#include "graft/core/error.h"
#include "graft/ir/metadata.h"

namespace graft::zoo {
namespace {

constexpr float kBnEpsilon = 1e-3f;   // Keras BatchNormalization default
constexpr float kBnMomentum = 0.99f;  // Keras default; ONNX uses the same convention

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t pad_total) {
  return (in + pad_total - k) / s + 1;
}

}  // namespace

Builder::Builder(std::string graph_name, uint64_t seed)
    : rng_(at::make_generator<at::CPUGeneratorImpl>(seed)) {
  graph_.name = std::move(graph_name);
  graph_.opset_imports = {{"", 13}};
  graph_.ir_version = 7;  // what opset 13 exporters write; read by every current runtime
}

std::string Builder::layer_name(const std::string& given, const std::string& keras_base) {
  if (!given.empty()) return given;
  const int n = name_counts_[keras_base]++;
  return n == 0 ? keras_base : keras_base + "_" + std::to_string(n);
}

ir::Node& Builder::add_node(const std::string& name, const std::string& op,
                            std::vector<std::string> inputs, const std::string& output) {
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
    throw Error("zoo: initializer '" + name + "' defined twice", ErrorKind::kInternal);
  }
  if (constant) constants_.push_back(name);
  return name;
}

at::Tensor Builder::glorot_uniform(std::vector<int64_t> sizes, int64_t fan_in, int64_t fan_out) {
  const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));
  at::Tensor t = at::zeros(sizes, at::kFloat);
  t.uniform_(-limit, limit, rng_);
  return t;
}

std::vector<int64_t> Builder::same_pads(const Act& x, Size2 kernel, Size2 strides) const {
  auto pad = [](int64_t in, int64_t k, int64_t s) {
    const int64_t out = (in + s - 1) / s;
    return std::max<int64_t>((out - 1) * s + k - in, 0);
  };
  const int64_t ph = pad(x.h(), kernel.h, strides.h), pw = pad(x.w(), kernel.w, strides.w);
  return {ph / 2, pw / 2, ph - ph / 2, pw - pw / 2};  // ONNX order: begins, then ends
}

Act Builder::spatial(const Act& x, const std::string& name, int64_t channels, Size2 kernel,
                     Size2 strides, const std::vector<int64_t>& pads) const {
  const int64_t h = out_size(x.h(), kernel.h, strides.h, pads[0] + pads[2]);
  const int64_t w = out_size(x.w(), kernel.w, strides.w, pads[1] + pads[3]);
  if (h < 1 || w < 1) {
    throw Error("zoo: layer '" + name + "' would shrink " + std::to_string(x.h()) + "x" +
                std::to_string(x.w()) + " to nothing; use a larger --input");
  }
  return {name, {channels, h, w}};
}

Act Builder::input(const std::string& name, int64_t channels, int64_t height, int64_t width) {
  graph_.inputs.push_back(name);
  ir::Value& v = graph_.values[name];
  v.name = name;
  v.dtype = ir::kFloat;
  v.shape = ir::Shape{ir::Dim(std::string("N")), channels, height, width};
  return {name, {channels, height, width}};
}

Act Builder::conv2d(const Act& x, int64_t filters, Size2 kernel, Size2 strides, Padding padding,
                    bool use_bias, const std::string& given) {
  const std::string name = layer_name(given, "conv2d");
  const std::vector<int64_t> pads =
      padding == Padding::kSame ? same_pads(x, kernel, strides) : std::vector<int64_t>{0, 0, 0, 0};
  const int64_t fan_in = x.c() * kernel.h * kernel.w, fan_out = filters * kernel.h * kernel.w;
  std::vector<std::string> inputs{
      x.name, add_initializer(name + "/kernel",
                              glorot_uniform({filters, x.c(), kernel.h, kernel.w}, fan_in, fan_out))};
  if (use_bias) inputs.push_back(add_initializer(name + "/bias", at::zeros({filters}, at::kFloat)));
  ir::Node& n = add_node(name, "Conv", std::move(inputs), name);
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {kernel.h, kernel.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  n.attributes.set(ir::Attribute::of_ints("dilations", {1, 1}));
  n.attributes.set(ir::Attribute::of_int("group", 1));
  return spatial(x, name, filters, kernel, strides, pads);
}

Act Builder::depthwise_conv2d(const Act& x, Size2 kernel, Size2 strides, Padding padding,
                              const std::string& given) {
  const std::string name = layer_name(given, "depthwise_conv2d");
  const std::vector<int64_t> pads =
      padding == Padding::kSame ? same_pads(x, kernel, strides) : std::vector<int64_t>{0, 0, 0, 0};
  // Keras' depthwise kernel is (kh, kw, C, 1): fan_in = kh*kw*C, fan_out = kh*kw.
  const int64_t area = kernel.h * kernel.w;
  const std::string w = add_initializer(
      name + "/depthwise_kernel", glorot_uniform({x.c(), 1, kernel.h, kernel.w}, area * x.c(), area));
  ir::Node& n = add_node(name, "Conv", {x.name, w}, name);
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {kernel.h, kernel.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  n.attributes.set(ir::Attribute::of_ints("dilations", {1, 1}));
  n.attributes.set(ir::Attribute::of_int("group", x.c()));
  return spatial(x, name, x.c(), kernel, strides, pads);
}

Act Builder::batch_norm(const Act& x, bool scale, const std::string& given) {
  const std::string name = layer_name(given, "batch_normalization");
  const int64_t c = x.c();
  std::vector<std::string> inputs{
      x.name,
      add_initializer(name + "/gamma", at::ones({c}, at::kFloat), /*constant=*/!scale),
      add_initializer(name + "/beta", at::zeros({c}, at::kFloat)),
      add_initializer(name + "/moving_mean", at::zeros({c}, at::kFloat)),
      add_initializer(name + "/moving_variance", at::ones({c}, at::kFloat))};
  ir::Node& n = add_node(name, "BatchNormalization", std::move(inputs), name);
  n.attributes.set(ir::Attribute::of_float("epsilon", kBnEpsilon));
  n.attributes.set(ir::Attribute::of_float("momentum", kBnMomentum));
  return {name, x.dims};
}

Act Builder::relu(const Act& x, const std::string& given) {
  const std::string name = layer_name(given, "activation");
  add_node(name, "Relu", {x.name}, name);
  return {name, x.dims};
}

Act Builder::relu6(const Act& x, const std::string& name) {
  const std::string lo = add_initializer(name + "/min", at::full({}, 0.0f, at::kFloat));
  const std::string hi = add_initializer(name + "/max", at::full({}, 6.0f, at::kFloat));
  add_node(name, "Clip", {x.name, lo, hi}, name);
  return {name, x.dims};
}

Act Builder::softmax(const Act& x, const std::string& given) {
  const std::string name = layer_name(given, "activation");
  ir::Node& n = add_node(name, "Softmax", {x.name}, name);
  n.attributes.set(ir::Attribute::of_int("axis", 1));
  return {name, x.dims};
}

Act Builder::zero_padding2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                            const std::string& given) {
  const std::string name = layer_name(given, "zero_padding2d");
  const std::string pads = add_initializer(
      name + "/pads", at::tensor(std::vector<int64_t>{0, 0, top, left, 0, 0, bottom, right}));
  ir::Node& n = add_node(name, "Pad", {x.name, pads}, name);
  n.attributes.set(ir::Attribute::of_string("mode", "constant"));
  return {name, {x.c(), x.h() + top + bottom, x.w() + left + right}};
}

Act Builder::max_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                           const std::string& given) {
  const std::string name = layer_name(given, "max_pooling2d");
  const std::vector<int64_t> pads =
      padding == Padding::kSame ? same_pads(x, pool, strides) : std::vector<int64_t>{0, 0, 0, 0};
  ir::Node& n = add_node(name, "MaxPool", {x.name}, name);
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {pool.h, pool.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  return spatial(x, name, x.c(), pool, strides, pads);
}

Act Builder::average_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                               const std::string& given) {
  const std::string name = layer_name(given, "average_pooling2d");
  const std::vector<int64_t> pads =
      padding == Padding::kSame ? same_pads(x, pool, strides) : std::vector<int64_t>{0, 0, 0, 0};
  ir::Node& n = add_node(name, "AveragePool", {x.name}, name);
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {pool.h, pool.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  // TensorFlow's "same" average pooling divides by the number of real (unpadded) inputs.
  n.attributes.set(ir::Attribute::of_int("count_include_pad", 0));
  return spatial(x, name, x.c(), pool, strides, pads);
}

Act Builder::global_average_pooling2d(const Act& x, bool keepdims, const std::string& given) {
  const std::string name = layer_name(given, "global_average_pooling2d");
  if (keepdims) {
    add_node(name, "GlobalAveragePool", {x.name}, name);
    return {name, {x.c(), 1, 1}};
  }
  ir::Node& n = add_node(name, "ReduceMean", {x.name}, name);
  n.attributes.set(ir::Attribute::of_ints("axes", {2, 3}));
  n.attributes.set(ir::Attribute::of_int("keepdims", 0));
  return {name, {x.c()}};
}

Act Builder::dropout(const Act& x, float rate, const std::string& given) {
  const std::string name = layer_name(given, "dropout");
  const std::string ratio = add_initializer(name + "/ratio", at::full({}, rate, at::kFloat));
  add_node(name, "Dropout", {x.name, ratio}, name);
  return {name, x.dims};
}

Act Builder::concatenate(const std::vector<Act>& xs, const std::string& given) {
  const std::string name = layer_name(given, "concatenate");
  std::vector<std::string> inputs;
  std::vector<int64_t> dims = xs.at(0).dims;
  dims[0] = 0;
  for (const Act& a : xs) {
    inputs.push_back(a.name);
    dims[0] += a.c();
  }
  ir::Node& n = add_node(name, "Concat", std::move(inputs), name);
  n.attributes.set(ir::Attribute::of_int("axis", 1));
  return {name, dims};
}

Act Builder::flatten(const Act& x, const std::string& name) {
  ir::Node& n = add_node(name, "Flatten", {x.name}, name);
  n.attributes.set(ir::Attribute::of_int("axis", 1));
  int64_t size = 1;
  for (int64_t d : x.dims) size *= d;
  return {name, {size}};
}

Act Builder::dense(const Act& x, int64_t units, const std::string& given) {
  const std::string name = layer_name(given, "dense");
  const int64_t in = x.c();
  // Keras' Dense kernel is (in, units); Gemm computes x · kernel + bias with transB = 0.
  std::vector<std::string> inputs{
      x.name, add_initializer(name + "/kernel", glorot_uniform({in, units}, in, units)),
      add_initializer(name + "/bias", at::zeros({units}, at::kFloat))};
  add_node(name, "Gemm", std::move(inputs), name);
  return {name, {units}};
}

Act Builder::scaled_residual(const Act& x, const Act& up, float scale, const std::string& name) {
  const std::string s = add_initializer(name + "/scale", at::full({}, scale, at::kFloat));
  add_node(name + "/scale", "Mul", {up.name, s}, name + "/scaled");
  add_node(name, "Add", {x.name, name + "/scaled"}, name);
  return {name, x.dims};
}

ir::Graph Builder::finish(const Act& output) {
  graph_.outputs = {output.name};
  ir::Value& v = graph_.values[output.name];
  v.name = output.name;
  v.dtype = ir::kFloat;
  v.shape = ir::Shape{ir::Dim(std::string("N"))};
  for (int64_t d : output.dims) v.shape->push_back(d);
  if (!constants_.empty()) ir::set_metadata_string_list(graph_, ir::kMetaConstants, constants_);
  graph_.reindex();
  return std::move(graph_);
}

}  // namespace graft::zoo

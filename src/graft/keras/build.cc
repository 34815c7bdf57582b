// A parsed Keras model built into an ir::Graph with Builder, layer by layer in model.layers
// order, then its saved weights assigned.
#include <ATen/ops/tensor.h>

#include <array>
#include <cstdio>
#include <map>
#include <regex>
#include <set>

#include "graft/core/error.h"
#include "graft/core/log.h"
#include "graft/ir/metadata.h"
#include "graft/keras/builder.h"
#include "graft/keras/internal.h"

namespace graft::keras::internal {
namespace {

using nlohmann::json;

const char* const kSupported =
    "InputLayer, Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Dense, "
    "BatchNormalization, LayerNormalization, Activation, ReLU, LeakyReLU, PReLU, ELU, Softmax, "
    "ZeroPadding2D, Cropping2D, UpSampling2D, MaxPooling2D, AveragePooling2D, "
    "GlobalAveragePooling2D, GlobalMaxPooling2D, Concatenate, Add, Subtract, Multiply, Average, "
    "Maximum, Minimum, Dropout, SpatialDropout2D, GaussianNoise, GaussianDropout, Flatten, "
    "Reshape, Permute, Rescaling, Normalization, CustomScaleLayer, InceptionResNetV2's scaled "
    "residual Lambda, elementwise TFOpLambda, nested Functional/Sequential models";

// Keras' naming.to_snake_case.
std::string snake_case(const std::string& cls) {
  std::string s = std::regex_replace(cls, std::regex("[^A-Za-z0-9_]+"), "");
  s = std::regex_replace(s, std::regex("(.)([A-Z][a-z]+)"), "$1_$2");
  s = std::regex_replace(s, std::regex("([a-z])([A-Z])"), "$1_$2");
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A config value read with a clear error naming the layer.
class Config {
 public:
  Config(const json& j, std::string layer, std::string cls)
      : j_(j), layer_(std::move(layer)), cls_(std::move(cls)) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error("layer '" + layer_ + "' (" + cls_ + "): " + what);
  }
  bool has(const char* key) const { return j_.contains(key) && !value(key).is_null(); }
  // A config value; Keras 3 writes numpy values as {"class_name": "__numpy__", "config":
  // {"value": …}}.
  const json& value(const char* key) const {
    const json& v = j_.at(key);
    if (v.is_object() && v.value("class_name", "") == "__numpy__" && v.contains("config") &&
        v["config"].is_object() && v["config"].contains("value")) {
      return v["config"]["value"];
    }
    return v;
  }
  template <typename T>
  T get(const char* key, T fallback) const {
    if (!has(key)) return fallback;
    try {
      return value(key).get<T>();
    } catch (const json::exception&) {
      fail(std::string("'") + key + "' is " + value(key).dump() + ", not the expected type");
    }
  }
  // An int or a pair ([h, w]).
  Size2 size2(const char* key, Size2 fallback) const {
    if (!has(key)) return fallback;
    const json& v = value(key);
    if (v.is_number_integer()) return Size2(v.get<int64_t>());
    if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer()) {
      return Size2(v[0].get<int64_t>(), v[1].get<int64_t>());
    }
    fail(std::string("'") + key + "' is " + v.dump() + ", expected an int or a pair");
  }
  // ZeroPadding2D/Cropping2D amounts: int, (h, w) symmetric, or ((top, bottom), (left, right)).
  std::array<int64_t, 4> box(const char* key) const {
    const json& v = value(key);
    if (v.is_number_integer()) {
      const int64_t p = v;
      return {p, p, p, p};
    }
    if (v.is_array() && v.size() == 2) {
      if (v[0].is_number_integer()) return {v[0], v[0], v[1], v[1]};
      if (v[0].is_array() && v[1].is_array() && v[0].size() == 2 && v[1].size() == 2) {
        return {v[0][0], v[0][1], v[1][0], v[1][1]};
      }
    }
    fail(std::string("'") + key + "' is " + v.dump() + ", not an amount graft understands");
  }
  Padding padding() const {
    const std::string p = get<std::string>("padding", "valid");
    if (p == "valid") return Padding::kValid;
    if (p == "same") return Padding::kSame;
    fail("padding '" + p + "' is not supported (valid, same)");
  }
  std::string activation() const {
    if (!has("activation")) return "linear";
    const json& a = j_["activation"];
    if (a.is_string()) return a;
    // Keras 3 may serialise a function as {"class_name": "function", "config": "relu"}.
    if (a.is_object() && a.contains("config") && a["config"].is_string()) return a["config"];
    fail("activation " + a.dump() + " is not supported");
  }
  int64_t axis(int64_t fallback) const {
    if (!has("axis")) return fallback;
    const json& a = value("axis");
    if (a.is_number_integer()) return a;
    if (a.is_array() && a.size() == 1 && a[0].is_number_integer()) return a[0];
    fail("axis " + a.dump() + " is not supported (one axis)");
  }
  std::vector<float> floats(const char* key, float fallback) const {
    if (!has(key)) return {fallback};
    const json& v = value(key);
    if (v.is_number()) return {v.get<float>()};
    if (v.is_array()) return v.get<std::vector<float>>();
    fail(std::string("'") + key + "' is " + v.dump() + ", expected a number or a list");
  }
  // Normalisation layers: graft supports the last axis (the channels of an image).
  void require_last_axis(const Act& x) const {
    const int64_t rank = static_cast<int64_t>(x.dims.size()) + 1;
    const int64_t a = axis(-1);
    if (a != -1 && a != rank - 1) fail("axis " + std::to_string(a) + " is not supported (the last axis, -1)");
  }
  void require_channels_last() const {
    const std::string f = get<std::string>("data_format", "channels_last");
    if (f != "channels_last") fail("data_format '" + f + "' is not supported (channels_last)");
  }

 private:
  const json& j_;
  std::string layer_, cls_;
};

class GraphBuilder {
 public:
  GraphBuilder(Builder& b, const ImportOptions& o, bool keras3) : b_(b), options_(o), keras3_(keras3) {}

  // Builds `m`; `inputs` feed its input layers (empty for the top model, whose InputLayers
  // become graph inputs). Returns the model's outputs.
  std::vector<Act> build(const ModelSpec& m, const std::string& prefix, const std::vector<Act>& inputs,
                         LayerPath parent) {
    std::map<std::string, std::vector<Act>> out;  // layer -> its output tensors
    std::map<std::string, int> key_counts;
    std::vector<const LayerSpec*> order = ordered(m);
    Act previous;  // Sequential: the last layer's output
    // A nested model's inputs feed its input layers in input_layers order (a Sequential has one).
    auto given_input = [&](const std::string& layer) -> const Act& {
      for (size_t i = 0; i < m.inputs.size(); ++i) {
        if (m.inputs[i].layer == layer) {
          if (i >= inputs.size()) break;
          return inputs[i];
        }
      }
      if (m.sequential && inputs.size() == 1) return inputs[0];
      throw Error("nested model input '" + layer + "' is not fed: the model is called with " +
                  std::to_string(inputs.size()) + " inputs");
    };
    for (const LayerSpec* l : order) {
      LayerPath path = parent;
      path.names.push_back(l->name);
      path.class_name = l->class_name;
      if (!(m.sequential && l->class_name == "InputLayer")) {
        std::string key = snake_case(l->class_name);
        const int n = key_counts[key]++;
        if (n > 0) key += "_" + std::to_string(n);
        path.keys.push_back("layers/" + key);
      }
      const std::string name = prefix + l->name;
      std::vector<Act> args;
      if (l->class_name == "InputLayer") {
        Act a = !inputs.empty() ? given_input(l->name) : make_input(*l, name);
        out[l->name] = {a};
        previous = a;
        continue;
      }
      if (m.sequential) {
        // Older Sequential configs have no InputLayer: the first layer carries the input shape
        // (Keras names the input "<layer>_input"), or a nested one is fed by its caller.
        if (previous.name.empty()) {
          previous = !inputs.empty() ? inputs[0] : make_input(*l, name + "_input", m.build_input_shape);
        }
        args = {previous};
      } else {
        if (l->calls.empty()) {
          log::warn("layer '" + name + "' is not connected to the model; left out");
          continue;
        }
        if (l->calls.size() > 1) {
          throw Error("layer '" + name + "' (" + l->class_name + ") is called " +
                      std::to_string(l->calls.size()) + " times; graft does not support shared layers");
        }
        for (const TensorRef& r : l->calls[0]) args.push_back(lookup(out, r, name));
      }
      std::vector<Act> result;
      if (l->nested) {
        result = with_context("nested model '" + name + "'",
                              [&] { return build(*l->nested, name + "/", args, path); });
      } else {
        const size_t first = b_.layers().size();
        result = {with_context("layer '" + name + "' (" + l->class_name + ")",
                               [&] { return layer(*l, name, args, out); })};
        for (size_t i = first; i < b_.layers().size(); ++i) paths_[b_.layers()[i].name] = path;
      }
      out[l->name] = result;
      previous = result.at(0);
    }
    if (m.sequential) return {previous};
    std::vector<Act> outputs;
    for (const TensorRef& r : m.outputs) outputs.push_back(lookup(out, r, "the model's outputs"));
    return outputs;
  }

  const std::map<std::string, LayerPath>& paths() const { return paths_; }

 private:
  // model.layers order: the config's, which Keras writes in that order; a hand-made config
  // that lists a layer before its inputs is put in Keras' order instead.
  static std::vector<const LayerSpec*> ordered(const ModelSpec& m) {
    std::vector<const LayerSpec*> order;
    for (const auto& l : m.layers) order.push_back(&l);
    if (m.sequential) return order;
    std::map<std::string, int> index;
    for (size_t i = 0; i < m.layers.size(); ++i) index[m.layers[i].name] = static_cast<int>(i);
    bool topological = true;
    std::vector<std::vector<int>> inputs(m.layers.size());
    for (size_t i = 0; i < m.layers.size(); ++i) {
      for (const auto& call : m.layers[i].calls) {
        for (const TensorRef& r : call) {
          auto it = index.find(r.layer);
          if (it == index.end()) {
            throw Error("layer '" + m.layers[i].name + "' reads unknown layer '" + r.layer + "'");
          }
          inputs[i].push_back(it->second);
          if (it->second >= static_cast<int>(i)) topological = false;
        }
      }
    }
    if (topological) return order;
    std::vector<int> outs;
    for (const TensorRef& r : m.outputs) outs.push_back(index.at(r.layer));
    order.clear();
    for (int i : model_layers_order(inputs, outs)) order.push_back(&m.layers[static_cast<size_t>(i)]);
    return order;
  }

  static Act lookup(const std::map<std::string, std::vector<Act>>& out, const TensorRef& r,
                    const std::string& who) {
    auto it = out.find(r.layer);
    if (it == out.end()) throw Error(who + " reads layer '" + r.layer + "', which comes later or does not exist");
    if (r.tensor < 0 || r.tensor >= static_cast<int>(it->second.size())) {
      throw Error(who + " reads output " + std::to_string(r.tensor) + " of layer '" + r.layer +
                  "', which has " + std::to_string(it->second.size()));
    }
    return it->second[static_cast<size_t>(r.tensor)];
  }

  Act make_input(const LayerSpec& l, const std::string& name, const json& fallback = json()) {
    const json& c = l.config;
    json shape = fallback;
    for (const char* k : {"batch_shape", "batch_input_shape"}) {
      if (c.contains(k) && !c[k].is_null()) shape = c[k];
    }
    if (shape.is_null() && c.contains("input_shape")) {
      shape = json::array({nullptr});
      for (const auto& d : c["input_shape"]) shape.push_back(d);
    }
    if (!shape.is_array() || shape.size() < 2) {
      throw Error("layer '" + l.name + "' (" + l.class_name + "): no input shape in the config");
    }
    std::vector<int64_t> dims;
    bool unknown = false;
    for (size_t i = 1; i < shape.size(); ++i) {
      if (shape[i].is_number_integer() && shape[i].get<int64_t>() > 0) {
        dims.push_back(shape[i]);
      } else {
        dims.push_back(-1);
        unknown = true;
      }
    }
    auto given = options_.input_shapes.find(name);
    if (given == options_.input_shapes.end() && options_.input_shapes.size() == 1) {
      given = options_.input_shapes.begin();
    }
    if (given != options_.input_shapes.end() && dims.size() == 3 && given->second.size() == 4) {
      const auto& d = given->second;  // NCHW from --input-shape
      if ((dims[2] > 0 && dims[2] != d[1])) {
        throw Error("input '" + name + "' has " + std::to_string(dims[2]) + " channels, --input-shape gives " +
                    std::to_string(d[1]));
      }
      dims = {d[2], d[3], d[1]};
      unknown = false;
    }
    if (unknown) {
      throw Error("input '" + name + "' has an unknown size " + shape.dump() +
                  "; give it with --input-shape (e.g. 1x3x224x224, NCHW)");
    }
    return b_.input_tensor(name, dims);
  }

  // `out`: the outputs of the layers built so far (a TFOpLambda may name one in its kwargs).
  Act layer(const LayerSpec& l, const std::string& name, const std::vector<Act>& args,
            const std::map<std::string, std::vector<Act>>& out) {
    const std::string& cls = l.class_name;
    const Config c(l.config, name, cls);
    auto one = [&]() -> const Act& {
      if (args.size() != 1) c.fail("expects 1 input, got " + std::to_string(args.size()));
      return args[0];
    };
    auto conv_options = [&](bool filters) {
      c.require_channels_last();
      ConvOptions o;
      if (filters) o.filters = c.get<int64_t>("filters", 0);
      if (filters && o.filters < 1) c.fail("filters must be positive");
      o.kernel = c.size2("kernel_size", 1);
      o.strides = c.size2("strides", 1);
      o.dilation = c.size2("dilation_rate", 1);
      o.padding = c.padding();
      o.groups = c.get<int64_t>("groups", 1);
      o.use_bias = c.get<bool>("use_bias", true);
      o.activation = c.activation();
      if (o.kernel.h < 1 || o.kernel.w < 1 || o.strides.h < 1 || o.strides.w < 1 ||
          o.dilation.h < 1 || o.dilation.w < 1) {
        c.fail("kernel_size, strides and dilation_rate must be positive");
      }
      return o;
    };
    if (cls == "Conv2D" || cls == "Convolution2D") return b_.conv2d(one(), conv_options(true), name);
    if (cls == "DepthwiseConv2D") {
      return b_.depthwise_conv2d(one(), conv_options(false), c.get<int64_t>("depth_multiplier", 1), name);
    }
    if (cls == "SeparableConv2D" || cls == "SeparableConvolution2D") {
      return b_.separable_conv2d(one(), conv_options(true), c.get<int64_t>("depth_multiplier", 1), name);
    }
    if (cls == "Conv2DTranspose" || cls == "Convolution2DTranspose") {
      return b_.conv2d_transpose(one(), conv_options(true),
                                 c.get<std::vector<int64_t>>("output_padding", {}), name);
    }
    if (cls == "Dense") {
      const int64_t units = c.get<int64_t>("units", 0);
      if (units < 1) c.fail("units must be positive");
      return b_.dense(one(), units, c.activation(), c.get<bool>("use_bias", true), name);
    }
    if (cls == "BatchNormalization") {
      const Act& x = one();
      c.require_last_axis(x);
      BatchNormOptions o;
      o.center = c.get<bool>("center", true);
      o.scale = c.get<bool>("scale", true);
      o.epsilon = c.get<float>("epsilon", 1e-3f);
      o.momentum = c.get<float>("momentum", 0.99f);
      return b_.batch_norm(x, o, name);
    }
    if (cls == "LayerNormalization") {
      const Act& x = one();
      c.require_last_axis(x);
      return b_.layer_norm(x, c.get<float>("epsilon", 1e-3f), c.get<bool>("center", true),
                           c.get<bool>("scale", true), name);
    }
    if (cls == "Activation") return b_.activation(one(), c.activation(), name);
    if (cls == "ReLU") {
      return b_.relu_layer(one(), c.get<float>("max_value", -1.0f), c.get<float>("negative_slope", 0.0f),
                           c.get<float>("threshold", 0.0f), name);
    }
    if (cls == "LeakyReLU") {
      return b_.leaky_relu(one(), c.get<float>("negative_slope", c.get<float>("alpha", 0.3f)), name);
    }
    if (cls == "PReLU") return b_.prelu(one(), c.get<std::vector<int64_t>>("shared_axes", {}), name);
    if (cls == "ELU") return b_.elu(one(), c.get<float>("alpha", 1.0f), name);
    if (cls == "Softmax") return b_.softmax(one(), name, c.axis(-1));
    if (cls == "ZeroPadding2D") {
      c.require_channels_last();
      const auto p = c.box("padding");
      return b_.zero_padding2d(one(), p[0], p[1], p[2], p[3], name);
    }
    if (cls == "Cropping2D") {
      c.require_channels_last();
      const auto p = c.box("cropping");
      return b_.cropping2d(one(), p[0], p[1], p[2], p[3], name);
    }
    if (cls == "UpSampling2D") {
      c.require_channels_last();
      return b_.upsampling2d(one(), c.size2("size", 2), c.get<std::string>("interpolation", "nearest"), name);
    }
    if (cls == "MaxPooling2D" || cls == "AveragePooling2D" || cls == "MaxPool2D" || cls == "AvgPool2D") {
      c.require_channels_last();
      const Size2 pool = c.size2("pool_size", 2);
      const Size2 strides = c.size2("strides", pool);
      if (pool.h < 1 || pool.w < 1 || strides.h < 1 || strides.w < 1) c.fail("pool_size and strides must be positive");
      return cls[0] == 'M' ? b_.max_pooling2d(one(), pool, strides, c.padding(), name)
                           : b_.average_pooling2d(one(), pool, strides, c.padding(), name);
    }
    if (cls == "GlobalAveragePooling2D" || cls == "GlobalAvgPool2D") {
      c.require_channels_last();
      return b_.global_average_pooling2d(one(), c.get<bool>("keepdims", false), name);
    }
    if (cls == "GlobalMaxPooling2D" || cls == "GlobalMaxPool2D") {
      c.require_channels_last();
      return b_.global_max_pooling2d(one(), c.get<bool>("keepdims", false), name);
    }
    static const std::map<std::string, std::string> kMerges = {
        {"Add", "add"},         {"Subtract", "subtract"}, {"Multiply", "multiply"},
        {"Average", "average"}, {"Maximum", "maximum"},   {"Minimum", "minimum"}};
    if (auto m = kMerges.find(cls); m != kMerges.end()) return b_.merge(args, m->second, name);
    if (cls == "Concatenate") return b_.concatenate(args, name, c.axis(-1));
    if (cls == "Dropout" || cls == "SpatialDropout2D") return b_.dropout(one(), c.get<float>("rate", 0.5f), name);
    if (cls == "GaussianNoise" || cls == "GaussianDropout" || cls == "AlphaDropout" ||
        cls == "ActivityRegularization") {
      return b_.identity(one(), name);
    }
    if (cls == "Flatten") {
      c.require_channels_last();
      return b_.flatten(one(), name);
    }
    if (cls == "Reshape") return b_.reshape(one(), c.get<std::vector<int64_t>>("target_shape", {}), name);
    if (cls == "Permute") return b_.permute(one(), c.get<std::vector<int64_t>>("dims", {}), name);
    if (cls == "Rescaling") return b_.rescaling(one(), c.floats("scale", 1), c.floats("offset", 0), name);
    if (cls == "Normalization") {
      const Act& x = one();
      c.require_last_axis(x);
      std::vector<float> mean, var;
      if (c.has("mean") && c.has("variance")) {
        mean = c.floats("mean", 0);
        var = c.floats("variance", 1);
        const size_t ch = static_cast<size_t>(x.image() ? x.c() : x.dims.back());
        if (mean.size() == 1) mean.assign(ch, mean[0]);
        if (var.size() == 1) var.assign(ch, var[0]);
      }
      return b_.normalization(x, mean, var, name);
    }
    if (cls == "CustomScaleLayer" || cls == "Custom>CustomScaleLayer") {
      if (args.size() != 2) c.fail("expects 2 inputs (x, residual), got " + std::to_string(args.size()));
      return b_.scaled_residual(args[0], args[1], c.get<float>("scale", 1.0f), name);
    }
    if (cls == "TFOpLambda") {
      // tf.keras records `x + 3.0`, `x * (1 / 6)`, tf.nn.relu6(x), … on Keras tensors as
      // TFOpLambda layers; graft runs the elementwise ones (keras.applications' MobileNetV3).
      static const std::map<std::string, std::string> kFunctions = {
          {"__operators__.add", "Add"}, {"math.add", "Add"},          {"math.subtract", "Sub"},
          {"__operators__.sub", "Sub"}, {"math.multiply", "Mul"},     {"math.truediv", "Div"},
          {"__operators__.truediv", "Div"}, {"nn.relu", "relu"},      {"nn.relu6", "relu6"},
          {"math.sigmoid", "sigmoid"},  {"nn.sigmoid", "sigmoid"},    {"math.tanh", "tanh"},
          {"nn.silu", "swish"},         {"nn.swish", "swish"},        {"nn.gelu", "gelu"},
          {"nn.elu", "elu"},            {"nn.softmax", "softmax"}};
      const std::string fn = c.get<std::string>("function", "");
      auto f = kFunctions.find(fn);
      if (f == kFunctions.end()) {
        c.fail("TF function '" + fn + "' is not supported (graft runs add, subtract, multiply, truediv with a "
               "scalar or a same-shape tensor, and relu, relu6, sigmoid, tanh, silu, gelu, elu, softmax)");
      }
      if (args.empty()) c.fail("has no input");
      const Act& x = args[0];
      const json kwargs = l.call_kwargs.empty() ? json::object() : l.call_kwargs[0];
      const json y = kwargs.contains("y") ? kwargs["y"] : json();
      const bool binary = f->second == "Add" || f->second == "Sub" || f->second == "Mul" || f->second == "Div";
      if (!binary) return b_.tf_op(x, f->second, nullptr, 0, name);
      if (args.size() == 2) return b_.tf_op(x, f->second, &args[1], 0, name);
      if (y.is_number()) return b_.tf_op(x, f->second, nullptr, y.get<float>(), name);
      if (y.is_array() && y.size() >= 3 && y[0].is_string()) {  // the other operand is a tensor
        const Act other = lookup(out, {y[0].get<std::string>(), y[2].get<int>()}, name);
        return b_.tf_op(x, f->second, &other, 0, name);
      }
      c.fail("'" + fn + "' needs its second operand y: a number or a Keras tensor, got " + y.dump());
    }
    if (cls == "Lambda") {
      // InceptionResNetV2's Lambda(lambda inputs, scale: inputs[0] + inputs[1] * scale).
      const json& arguments = l.config.contains("arguments") ? l.config["arguments"] : json();
      if (args.size() == 2 && arguments.is_object() && arguments.size() == 1 && arguments.contains("scale") &&
          arguments["scale"].is_number()) {
        return b_.scaled_residual(args[0], args[1], arguments["scale"].get<float>(), name);
      }
      c.fail("graft does not run Python code: a Lambda layer is supported only as "
             "InceptionResNetV2's scaled residual (two inputs, arguments {\"scale\": s}); rewrite "
             "it as a built-in layer");
    }
    c.fail(std::string("layer class '") + cls + "' is not supported; graft supports " + kSupported);
  }

  Builder& b_;
  const ImportOptions& options_;
  bool keras3_;
  std::map<std::string, LayerPath> paths_;
};

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "(";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + (s.size() == 1 ? ",)" : ")");
}

void assign_weights(Builder& b, const std::map<std::string, LayerPath>& paths, WeightStore& store,
                    const std::string& origin) {
  for (const LayerRecord& layer : b.layers()) {
    if (layer.weights.empty()) continue;
    auto path = paths.find(layer.name);
    if (path == paths.end()) continue;
    std::vector<std::vector<int64_t>> shapes;
    for (const Weight& w : layer.weights) shapes.push_back(w.keras_shape);
    with_context(origin + ": layer '" + layer.name + "' (" + layer.class_name + ")", [&] {
      std::vector<at::Tensor> saved = store.layer_weights(path->second, shapes);
      if (saved.size() != layer.weights.size()) {
        throw Error("the file has " + std::to_string(saved.size()) + " weights for it, the config implies " +
                    std::to_string(layer.weights.size()) + " (do the config and the weights file belong together?)");
      }
      for (size_t i = 0; i < saved.size(); ++i) {
        const Weight& w = layer.weights[i];
        if (w.initializer.empty()) continue;
        const std::vector<int64_t> got(saved[i].sizes().begin(), saved[i].sizes().end());
        if (got != w.keras_shape) {
          throw Error("weight " + std::to_string(i) + " ('" + w.initializer + "') has shape " + shape_text(got) +
                      " in the file, the config needs " + shape_text(w.keras_shape) +
                      " (do the config and the weights file belong together?)");
        }
        b.set_initializer(w.initializer, w.convert ? w.convert(saved[i]) : saved[i].contiguous());
      }
    });
  }
}

// keras.applications' preprocessing modes, recognised by the model's name.
std::string recognise_preprocess(const std::string& model_name) {
  static const std::vector<std::pair<std::regex, std::string>> kModes = {
      {std::regex("^(mobilenet|inception|xception|nasnet|resnet\\d+v2).*"), "tf"},
      {std::regex("^(resnet\\d+|vgg\\d+)$"), "caffe"},
      {std::regex("^densenet.*"), "torch"}};
  for (const auto& [re, mode] : kModes) {
    if (std::regex_match(model_name, re)) return mode;
  }
  return "";
}

void record_preprocess(ir::Graph& g, const std::string& mode, const std::string& model_name) {
  if (mode.empty() || mode == "none" || g.inputs.size() != 1) return;
  const auto& shape = g.value(g.inputs[0]).shape;
  if (!shape || shape->size() != 4 || !(*shape)[1].known()) return;
  const int64_t c = (*shape)[1].value;
  nlohmann::json p;
  p["size"] = {(*shape)[2].value, (*shape)[3].value};
  p["channels"] = c;
  p["layout"] = "NCHW";
  p["resize"] = "bilinear";
  p["mode"] = mode;
  if (mode == "tf") {  // x / 127.5 - 1
    p["scale"] = 1.0 / 255.0;
    p["mean"] = std::vector<double>(static_cast<size_t>(c), 0.5);
    p["std"] = std::vector<double>(static_cast<size_t>(c), 0.5);
  } else if (mode == "torch") {  // x / 255, ImageNet mean and std
    p["scale"] = 1.0 / 255.0;
    p["mean"] = c == 3 ? std::vector<double>{0.485, 0.456, 0.406} : std::vector<double>(size_t(c), 0.449);
    p["std"] = c == 3 ? std::vector<double>{0.229, 0.224, 0.225} : std::vector<double>(size_t(c), 0.226);
  } else if (mode == "caffe") {  // BGR, ImageNet mean subtracted, no scaling
    p["scale"] = 1.0;
    p["channel_order"] = "BGR";
    p["mean"] = c == 3 ? std::vector<double>{103.939, 116.779, 123.68} : std::vector<double>(size_t(c), 114.8);
    p["std"] = std::vector<double>(static_cast<size_t>(c), 1.0);
  } else {
    throw Error("unknown preprocessing mode '" + mode + "' (tf, caffe, torch, none)");
  }
  if (!model_name.empty()) p["keras_model"] = model_name;
  g.set_metadata(ir::kMetaPreprocess, p.dump());
}

}  // namespace

ir::Graph build_graph(const ModelSpec& spec, WeightStore* store, bool keras3, const ImportOptions& options,
                      const std::string& origin) {
  Builder b(spec.name.empty() ? "keras_model" : spec.name, options.seed);
  b.set_keras3(keras3);
  GraphBuilder gb(b, options, keras3);
  const std::vector<Act> outputs = gb.build(spec, "", {}, {});
  if (store) {
    assign_weights(b, gb.paths(), *store, origin);
  } else {
    log::warn(origin + ": the file has no weights; they are initialised as Keras would (seed " +
              std::to_string(options.seed) + ")");
  }
  std::set<std::string> seen;
  std::vector<Act> unique_outputs;
  for (const Act& a : outputs) {
    if (seen.insert(a.name).second) unique_outputs.push_back(a);
  }
  ir::Graph g = b.finish(unique_outputs);
  g.producer_name = "graft (Keras import)";
  g.set_metadata(ir::kMetaRole, "model");
  const std::string mode = options.preprocess.empty() ? recognise_preprocess(spec.name) : options.preprocess;
  record_preprocess(g, mode, spec.name);
  return g;
}

}  // namespace graft::keras::internal

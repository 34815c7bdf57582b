// Builder: the layers without weights of their own (activations, pooling, merges, reshapes)
// and PReLU.
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <numeric>

#include "graft/core/error.h"
#include "graft/keras/builder.h"

namespace graft::keras {
namespace {

at::Tensor scalar(float v) { return at::full({}, v, at::kFloat); }
at::Tensor int64s(const std::vector<int64_t>& v) { return at::tensor(v); }

}  // namespace

int64_t Builder::graph_axis(const Act& x, int64_t keras_axis, const std::string& layer) {
  const int64_t rank = static_cast<int64_t>(x.dims.size()) + 1;
  const int64_t a = keras_axis < 0 ? keras_axis + rank : keras_axis;
  if (a < 1 || a >= rank) {
    throw Error("layer '" + layer + "': axis " + std::to_string(keras_axis) + " is not a feature " +
                "axis of a " + std::to_string(rank) + "-D tensor");
  }
  if (!x.image()) return a;
  return a == 3 ? 1 : a + 1;  // Keras (N, H, W, C) -> graft (N, C, H, W)
}

std::string Builder::to_keras_layout(const Act& x, const std::string& helper) {
  // NCHW and NHWC hold the same element order when C == 1 or H == W == 1.
  if (!x.image() || x.c() == 1 || x.h() * x.w() == 1) return x.name;
  ir::Node& n = add_node(helper, "Transpose", {x.name}, helper);
  n.attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  return helper;
}

Act Builder::activation_nodes(const Act& x, const std::string& kind, const std::string& name) {
  auto unary = [&](const std::string& op) -> ir::Node& {
    return add_node(name, op, {x.name}, name);
  };
  auto gated = [&](const std::string& gate_op, float alpha, float beta) {
    ir::Node& g = add_node(name + "/gate", gate_op, {x.name}, name + "/gate");
    if (gate_op == "HardSigmoid") {
      g.attributes.set(ir::Attribute::of_float("alpha", alpha));
      g.attributes.set(ir::Attribute::of_float("beta", beta));
    }
    add_node(name, "Mul", {x.name, name + "/gate"}, name);
  };
  if (kind == "linear") {
    if (x.name != name) unary("Identity");
  } else if (kind == "relu") {
    unary("Relu");
  } else if (kind == "relu6") {
    add_node(name, "Clip", {x.name, constant(name + "/min", scalar(0)), constant(name + "/max", scalar(6))},
             name);
  } else if (kind == "sigmoid") {
    unary("Sigmoid");
  } else if (kind == "tanh") {
    unary("Tanh");
  } else if (kind == "hard_sigmoid") {
    ir::Node& n = unary("HardSigmoid");
    n.attributes.set(ir::Attribute::of_float("alpha", keras3_ ? 1.0f / 6 : 0.2f));
    n.attributes.set(ir::Attribute::of_float("beta", 0.5f));
  } else if (kind == "swish" || kind == "silu") {
    gated("Sigmoid", 0, 0);
  } else if (kind == "hard_swish" || kind == "hard_silu") {
    gated("HardSigmoid", 1.0f / 6, 0.5f);
  } else if (kind == "gelu" || kind == "gelu_approximate") {
    std::string inner;
    if (kind == "gelu") {  // 0.5 x (1 + erf(x / sqrt 2))
      add_node(name + "/scaled", "Mul", {x.name, constant(name + "/rsqrt2", scalar(float(M_SQRT1_2)))},
               name + "/scaled");
      add_node(name + "/erf", "Erf", {name + "/scaled"}, name + "/erf");
      inner = name + "/erf";
    } else {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      add_node(name + "/sq", "Mul", {x.name, x.name}, name + "/sq");
      add_node(name + "/cube", "Mul", {name + "/sq", x.name}, name + "/cube");
      add_node(name + "/cube_k", "Mul", {name + "/cube", constant(name + "/k", scalar(0.044715f))},
               name + "/cube_k");
      add_node(name + "/sum", "Add", {x.name, name + "/cube_k"}, name + "/sum");
      add_node(name + "/arg", "Mul",
               {name + "/sum", constant(name + "/c", scalar(float(std::sqrt(2.0 / M_PI))))}, name + "/arg");
      add_node(name + "/tanh", "Tanh", {name + "/arg"}, name + "/tanh");
      inner = name + "/tanh";
    }
    add_node(name + "/plus1", "Add", {inner, constant(name + "/one", scalar(1))}, name + "/plus1");
    add_node(name + "/mul", "Mul", {x.name, name + "/plus1"}, name + "/mul");
    add_node(name, "Mul", {name + "/mul", constant(name + "/half", scalar(0.5f))}, name);
  } else if (kind == "elu") {
    unary("Elu").attributes.set(ir::Attribute::of_float("alpha", 1.0f));
  } else if (kind == "leaky_relu") {
    unary("LeakyRelu").attributes.set(ir::Attribute::of_float("alpha", 0.2f));
  } else if (kind == "softmax") {
    unary("Softmax").attributes.set(ir::Attribute::of_int("axis", graph_axis(x, -1, name)));
  } else {
    throw Error("layer '" + name + "': activation '" + kind + "' is not supported (graft supports " +
                "relu, relu6, sigmoid, hard_sigmoid, swish/silu, hard_swish, gelu, tanh, softmax, " +
                "elu, leaky_relu, linear)");
  }
  return {name, x.dims};
}

Act Builder::activation(const Act& x, const std::string& kind, const std::string& given) {
  const std::string name = layer_name(given, "activation");
  begin_layer(name, "Activation");
  return activation_nodes(x, kind, name);
}

Act Builder::relu(const Act& x, const std::string& name) { return activation(x, "relu", name); }

Act Builder::relu6(const Act& x, const std::string& name) {
  begin_layer(name, "ReLU");
  return activation_nodes(x, "relu6", name);
}

Act Builder::relu_layer(const Act& x, float max_value, float negative_slope, float threshold,
                        const std::string& given) {
  const std::string name = layer_name(given, "re_lu");
  begin_layer(name, "ReLU");
  if (threshold != 0) {
    // As Keras' backend: x where x > threshold else 0, clipped to [0, max_value] when there is
    // one, minus negative_slope * relu(threshold - x).
    const bool clip = max_value >= 0, leaky = negative_slope != 0;
    std::string y = leaky || clip ? name + "/above" : name;
    add_node(y, "ThresholdedRelu", {x.name}, y).attributes.set(ir::Attribute::of_float("alpha", threshold));
    if (clip) {
      const std::string clipped = leaky ? name + "/clipped" : name;
      add_node(clipped, "Clip",
               {y, constant(name + "/min", scalar(0)), constant(name + "/max", scalar(max_value))}, clipped);
      y = clipped;
    }
    if (leaky) {
      add_node(name + "/below_in", "Sub", {constant(name + "/threshold", scalar(threshold)), x.name}, name + "/below_in");
      add_node(name + "/below", "Relu", {name + "/below_in"}, name + "/below");
      add_node(name + "/below_scaled", "Mul", {name + "/below", constant(name + "/slope", scalar(negative_slope))},
               name + "/below_scaled");
      add_node(name, "Sub", {y, name + "/below_scaled"}, name);
    }
    return {name, x.dims};
  }
  if (negative_slope == 0) {
    if (max_value < 0) return activation_nodes(x, "relu", name);
    add_node(name, "Clip",
             {x.name, constant(name + "/min", scalar(0)), constant(name + "/max", scalar(max_value))}, name);
    return {name, x.dims};
  }
  const std::string leaky = max_value < 0 ? name : name + "/leaky";
  add_node(leaky, "LeakyRelu", {x.name}, leaky)
      .attributes.set(ir::Attribute::of_float("alpha", negative_slope));
  if (max_value >= 0) {
    add_node(name, "Clip", {leaky, "", constant(name + "/max", scalar(max_value))}, name);
  }
  return {name, x.dims};
}

Act Builder::leaky_relu(const Act& x, float alpha, const std::string& given) {
  const std::string name = layer_name(given, "leaky_re_lu");
  begin_layer(name, "LeakyReLU");
  add_node(name, "LeakyRelu", {x.name}, name).attributes.set(ir::Attribute::of_float("alpha", alpha));
  return {name, x.dims};
}

Act Builder::elu(const Act& x, float alpha, const std::string& given) {
  const std::string name = layer_name(given, "elu");
  begin_layer(name, "ELU");
  add_node(name, "Elu", {x.name}, name).attributes.set(ir::Attribute::of_float("alpha", alpha));
  return {name, x.dims};
}

Act Builder::prelu(const Act& x, const std::vector<int64_t>& shared_axes, const std::string& given) {
  const std::string name = layer_name(given, "p_re_lu");
  LayerRecord& layer = begin_layer(name, "PReLU");
  // Keras' alpha has the per-sample Keras shape with shared axes set to 1.
  std::vector<int64_t> keras = x.image() ? std::vector<int64_t>{x.h(), x.w(), x.c()} : x.dims;
  for (int64_t a : shared_axes) {
    if (a < 1 || a > static_cast<int64_t>(keras.size())) {
      throw Error("layer '" + name + "' (PReLU): shared axis " + std::to_string(a) + " is out of range");
    }
    keras[static_cast<size_t>(a - 1)] = 1;
  }
  std::vector<int64_t> graph = keras;
  std::function<at::Tensor(const at::Tensor&)> convert;
  if (x.image()) {
    graph = {keras[2], keras[0], keras[1]};
    convert = [](const at::Tensor& t) { return t.permute({2, 0, 1}).contiguous(); };
  }
  const std::string alpha = add_weight(layer, "alpha", at::zeros(graph, at::kFloat), keras, convert);
  add_node(name, "PRelu", {x.name, alpha}, name);
  return {name, x.dims};
}

Act Builder::softmax(const Act& x, const std::string& given, int64_t keras_axis) {
  const std::string name = layer_name(given, "activation");
  begin_layer(name, "Softmax");
  add_node(name, "Softmax", {x.name}, name)
      .attributes.set(ir::Attribute::of_int("axis", graph_axis(x, keras_axis, name)));
  return {name, x.dims};
}

Act Builder::zero_padding2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                            const std::string& given) {
  const std::string name = layer_name(given, "zero_padding2d");
  require_image(x, name, "ZeroPadding2D");
  begin_layer(name, "ZeroPadding2D");
  const std::string pads = constant(name + "/pads", int64s({0, 0, top, left, 0, 0, bottom, right}));
  add_node(name, "Pad", {x.name, pads}, name).attributes.set(ir::Attribute::of_string("mode", "constant"));
  return {name, {x.c(), x.h() + top + bottom, x.w() + left + right}};
}

Act Builder::cropping2d(const Act& x, int64_t top, int64_t bottom, int64_t left, int64_t right,
                        const std::string& given) {
  const std::string name = layer_name(given, "cropping2d");
  require_image(x, name, "Cropping2D");
  begin_layer(name, "Cropping2D");
  const int64_t h = x.h() - top - bottom, w = x.w() - left - right;
  if (h < 1 || w < 1) throw Error("layer '" + name + "' (Cropping2D) crops the image to nothing");
  add_node(name, "Slice",
           {x.name, constant(name + "/starts", int64s({top, left})),
            constant(name + "/ends", int64s({top + h, left + w})), constant(name + "/axes", int64s({2, 3}))},
           name);
  return {name, {x.c(), h, w}};
}

Act Builder::upsampling2d(const Act& x, Size2 size, const std::string& interpolation,
                          const std::string& given) {
  const std::string name = layer_name(given, "up_sampling2d");
  require_image(x, name, "UpSampling2D");
  begin_layer(name, "UpSampling2D");
  if (interpolation != "nearest" && interpolation != "bilinear") {
    throw Error("layer '" + name + "' (UpSampling2D): interpolation '" + interpolation +
                "' is not supported (nearest, bilinear)");
  }
  const at::Tensor scales = at::tensor(std::vector<float>{1, 1, float(size.h), float(size.w)});
  ir::Node& n = add_node(name, "Resize", {x.name, "", constant(name + "/scales", scales)}, name);
  if (interpolation == "nearest") {
    n.attributes.set(ir::Attribute::of_string("mode", "nearest"));
    n.attributes.set(ir::Attribute::of_string("coordinate_transformation_mode", "asymmetric"));
    n.attributes.set(ir::Attribute::of_string("nearest_mode", "floor"));
  } else {
    n.attributes.set(ir::Attribute::of_string("mode", "linear"));
    n.attributes.set(ir::Attribute::of_string("coordinate_transformation_mode", "half_pixel"));
  }
  return {name, {x.c(), x.h() * size.h, x.w() * size.w}};
}

Act Builder::pooling2d(const Act& x, bool max, Size2 pool, Size2 strides, Padding padding,
                       const std::string& given) {
  const std::string name = layer_name(given, max ? "max_pooling2d" : "average_pooling2d");
  const char* class_name = max ? "MaxPooling2D" : "AveragePooling2D";
  require_image(x, name, class_name);
  begin_layer(name, class_name);
  const std::vector<int64_t> pads = pads_for(x, padding, pool, strides);
  ir::Node& n = add_node(name, max ? "MaxPool" : "AveragePool", {x.name}, name);
  n.attributes.set(ir::Attribute::of_ints("kernel_shape", {pool.h, pool.w}));
  n.attributes.set(ir::Attribute::of_ints("strides", {strides.h, strides.w}));
  n.attributes.set(ir::Attribute::of_ints("pads", pads));
  // TensorFlow's "same" average pooling divides by the number of real (unpadded) inputs.
  if (!max) n.attributes.set(ir::Attribute::of_int("count_include_pad", 0));
  return spatial(x, name, x.c(), pool, strides, pads);
}

Act Builder::max_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                           const std::string& name) {
  return pooling2d(x, true, pool, strides, padding, name);
}

Act Builder::average_pooling2d(const Act& x, Size2 pool, Size2 strides, Padding padding,
                               const std::string& name) {
  return pooling2d(x, false, pool, strides, padding, name);
}

Act Builder::global_average_pooling2d(const Act& x, bool keepdims, const std::string& given) {
  const std::string name = layer_name(given, "global_average_pooling2d");
  require_image(x, name, "GlobalAveragePooling2D");
  begin_layer(name, "GlobalAveragePooling2D");
  if (keepdims) {
    add_node(name, "GlobalAveragePool", {x.name}, name);
    return {name, {x.c(), 1, 1}};
  }
  ir::Node& n = add_node(name, "ReduceMean", {x.name}, name);
  n.attributes.set(ir::Attribute::of_ints("axes", {2, 3}));
  n.attributes.set(ir::Attribute::of_int("keepdims", 0));
  return {name, {x.c()}};
}

Act Builder::global_max_pooling2d(const Act& x, bool keepdims, const std::string& given) {
  const std::string name = layer_name(given, "global_max_pooling2d");
  require_image(x, name, "GlobalMaxPooling2D");
  begin_layer(name, "GlobalMaxPooling2D");
  if (keepdims) {
    add_node(name, "GlobalMaxPool", {x.name}, name);
    return {name, {x.c(), 1, 1}};
  }
  add_node(name + "/pool", "GlobalMaxPool", {x.name}, name + "/pool");
  add_node(name, "Flatten", {name + "/pool"}, name).attributes.set(ir::Attribute::of_int("axis", 1));
  return {name, {x.c()}};
}

Act Builder::merge(const std::vector<Act>& xs, const std::string& kind, const std::string& given) {
  static const std::map<std::string, std::pair<std::string, std::string>> kOps = {
      {"add", {"Add", "Add"}},         {"subtract", {"Sub", "Subtract"}},
      {"multiply", {"Mul", "Multiply"}}, {"average", {"Add", "Average"}},
      {"maximum", {"Max", "Maximum"}}, {"minimum", {"Min", "Minimum"}}};
  const auto& [op, class_name] = kOps.at(kind);
  const std::string name = layer_name(given, kind);
  begin_layer(name, class_name);
  if (xs.size() < 2 || (kind == "subtract" && xs.size() != 2)) {
    throw Error("layer '" + name + "' (" + class_name + ") needs " +
                (kind == "subtract" ? "exactly 2" : "at least 2") + " inputs, got " +
                std::to_string(xs.size()));
  }
  for (const Act& x : xs) {
    if (x.dims != xs[0].dims) {
      throw Error("layer '" + name + "' (" + class_name + "): inputs '" + xs[0].name + "' and '" +
                  x.name + "' have different shapes");
    }
  }
  std::string acc = xs[0].name;
  for (size_t i = 1; i < xs.size(); ++i) {
    const bool last = i + 1 == xs.size() && kind != "average";
    const std::string out = last ? name : name + "/" + std::to_string(i);
    add_node(out, op, {acc, xs[i].name}, out);
    acc = out;
  }
  if (kind == "average") {
    add_node(name, "Mul", {acc, constant(name + "/inv_n", scalar(1.0f / float(xs.size())))}, name);
  }
  return {name, xs[0].dims};
}

Act Builder::concatenate(const std::vector<Act>& xs, const std::string& given, int64_t keras_axis) {
  const std::string name = layer_name(given, "concatenate");
  begin_layer(name, "Concatenate");
  const int64_t axis = graph_axis(xs.at(0), keras_axis, name);
  std::vector<std::string> inputs;
  std::vector<int64_t> dims = xs.at(0).dims;
  dims[static_cast<size_t>(axis - 1)] = 0;
  for (const Act& a : xs) {
    if (a.dims.size() != dims.size()) {
      throw Error("layer '" + name + "' (Concatenate): inputs of different ranks ('" + xs[0].name +
                  "' and '" + a.name + "')");
    }
    inputs.push_back(a.name);
    dims[static_cast<size_t>(axis - 1)] += a.dims[static_cast<size_t>(axis - 1)];
  }
  add_node(name, "Concat", std::move(inputs), name).attributes.set(ir::Attribute::of_int("axis", axis));
  return {name, dims};
}

Act Builder::dropout(const Act& x, float rate, const std::string& given) {
  const std::string name = layer_name(given, "dropout");
  begin_layer(name, "Dropout");
  add_node(name, "Dropout", {x.name, constant(name + "/ratio", scalar(rate))}, name);
  return {name, x.dims};
}

Act Builder::identity(const Act& x, const std::string& name) {
  begin_layer(name, "Identity");
  add_node(name, "Identity", {x.name}, name);
  return {name, x.dims};
}

Act Builder::flatten(const Act& x, const std::string& given) {
  const std::string name = layer_name(given, "flatten");
  begin_layer(name, "Flatten");
  // Keras flattens channels-last: (H, W, C) element order.
  const std::string in = to_keras_layout(x, name + "/nhwc");
  add_node(name, "Flatten", {in}, name).attributes.set(ir::Attribute::of_int("axis", 1));
  const int64_t size = std::accumulate(x.dims.begin(), x.dims.end(), int64_t{1}, std::multiplies<>());
  return {name, {size}};
}

Act Builder::reshape(const Act& x, const std::vector<int64_t>& keras_target, const std::string& given) {
  const std::string name = layer_name(given, "reshape");
  begin_layer(name, "Reshape");
  const int64_t size = std::accumulate(x.dims.begin(), x.dims.end(), int64_t{1}, std::multiplies<>());
  std::vector<int64_t> target = keras_target;
  int64_t known = 1, unknown = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1 && unknown < 0) {
      unknown = static_cast<int64_t>(i);
    } else if (target[i] > 0) {
      known *= target[i];
    } else {
      throw Error("layer '" + name + "' (Reshape): bad target dimension " + std::to_string(target[i]));
    }
  }
  if (unknown >= 0 && known > 0 && size % known == 0) target[static_cast<size_t>(unknown)] = size / known;
  const int64_t total = std::accumulate(target.begin(), target.end(), int64_t{1}, std::multiplies<>());
  if (total != size) {
    throw Error("layer '" + name + "' (Reshape): cannot reshape " + std::to_string(size) +
                " values per sample into " + std::to_string(total));
  }
  const std::string in = to_keras_layout(x, name + "/nhwc");
  std::vector<int64_t> shape{0};
  shape.insert(shape.end(), target.begin(), target.end());
  const bool image = target.size() == 3;
  const bool permute = image && target[2] != 1 && target[0] * target[1] != 1;
  if (image && !permute) shape = {0, target[2], target[0], target[1]};
  const std::string node = permute ? name + "/reshape" : name;
  add_node(node, "Reshape", {in, constant(name + "/shape", int64s(shape))}, node);
  if (permute) {
    add_node(name, "Transpose", {node}, name).attributes.set(ir::Attribute::of_ints("perm", {0, 3, 1, 2}));
  }
  if (image) return {name, {target[2], target[0], target[1]}};
  return {name, target};
}

Act Builder::permute(const Act& x, const std::vector<int64_t>& keras_dims, const std::string& given) {
  const std::string name = layer_name(given, "permute");
  begin_layer(name, "Permute");
  const size_t rank = x.dims.size() + 1;
  if (keras_dims.size() + 1 != rank) {
    throw Error("layer '" + name + "' (Permute): dims has " + std::to_string(keras_dims.size()) +
                " entries for a " + std::to_string(rank) + "-D tensor");
  }
  // Keras axis <-> graph axis for images; identity otherwise.
  auto graph_of_keras = [&](int64_t k) -> int64_t { return rank == 4 ? (k == 0 ? 0 : k == 3 ? 1 : k + 1) : k; };
  auto keras_of_graph = [&](int64_t g) -> int64_t { return rank == 4 ? (g == 0 ? 0 : g == 1 ? 3 : g - 1) : g; };
  std::vector<int64_t> keras_perm{0};
  for (int64_t d : keras_dims) keras_perm.push_back(d);
  std::vector<int64_t> sorted = keras_perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < rank; ++i) {
    if (sorted[i] != static_cast<int64_t>(i)) {
      throw Error("layer '" + name + "' (Permute): dims must be a permutation of 1.." + std::to_string(rank - 1));
    }
  }
  std::vector<int64_t> keras_in = x.image() ? std::vector<int64_t>{x.h(), x.w(), x.c()} : x.dims;
  std::vector<int64_t> keras_out;
  for (int64_t d : keras_dims) keras_out.push_back(keras_in[static_cast<size_t>(d - 1)]);
  std::vector<int64_t> perm(rank);
  for (size_t g = 0; g < rank; ++g) {
    perm[g] = graph_of_keras(keras_perm[static_cast<size_t>(keras_of_graph(static_cast<int64_t>(g)))]);
  }
  add_node(name, "Transpose", {x.name}, name).attributes.set(ir::Attribute::of_ints("perm", perm));
  if (rank == 4) return {name, {keras_out[2], keras_out[0], keras_out[1]}};
  return {name, keras_out};
}

Act Builder::rescaling(const Act& x, const std::vector<float>& scale, const std::vector<float>& offset,
                       const std::string& given) {
  const std::string name = layer_name(given, "rescaling");
  begin_layer(name, "Rescaling");
  auto as_tensor = [&](const std::vector<float>& v) {
    at::Tensor t = at::tensor(v);
    if (v.size() == 1) return t.reshape({});
    return x.image() ? t.reshape({static_cast<int64_t>(v.size()), 1, 1}) : t;
  };
  const bool has_offset = std::any_of(offset.begin(), offset.end(), [](float f) { return f != 0; });
  const std::string mul = has_offset ? name + "/scale" : name;
  add_node(mul, "Mul", {x.name, constant(name + "/scale_value", as_tensor(scale))}, mul);
  if (has_offset) add_node(name, "Add", {mul, constant(name + "/offset", as_tensor(offset))}, name);
  return {name, x.dims};
}

Act Builder::tf_op(const Act& x, const std::string& op, const Act* other, float y, const std::string& name) {
  begin_layer(name, "TFOpLambda");
  if (op != "Add" && op != "Sub" && op != "Mul" && op != "Div") return activation_nodes(x, op, name);
  if (other && other->dims != x.dims) {
    throw Error("layer '" + name + "' (TFOpLambda): operands '" + x.name + "' and '" + other->name +
                "' have different shapes (graft supports a scalar or a tensor of the same shape)");
  }
  add_node(name, op, {x.name, other ? other->name : constant(name + "/y", scalar(y))}, name);
  return {name, x.dims};
}

Act Builder::scaled_residual(const Act& x, const Act& up, float scale, const std::string& name) {
  begin_layer(name, "Lambda");
  if (x.dims != up.dims) {
    throw Error("layer '" + name + "' (scaled residual): inputs '" + x.name + "' and '" + up.name +
                "' have different shapes");
  }
  const std::string s = add_initializer(name + "/scale", scalar(scale));
  add_node(name + "/scale", "Mul", {up.name, s}, name + "/scaled");
  add_node(name, "Add", {x.name, name + "/scaled"}, name);
  return {name, x.dims};
}

}  // namespace graft::keras

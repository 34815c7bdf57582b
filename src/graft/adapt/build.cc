// Writing an adapter into a graph as ONNX nodes.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"

namespace graft::adapt {
namespace {

using Kind = Layer::Kind;

// Does a ReLU follow layer i (possibly after its BatchNorm)? Then He initialisation suits it.
bool relu_follows(const std::vector<Layer>& layers, size_t i) {
  for (size_t j = i + 1; j < layers.size(); ++j) {
    if (layers[j].kind == Kind::kBatchNorm) continue;
    return layers[j].kind == Kind::kRelu || layers[j].kind == Kind::kRelu6;
  }
  return false;
}

}  // namespace

std::vector<std::string> build(const Adapter& a, ir::Graph& g, const std::string& input,
                               const std::string& output, const std::string& prefix, uint64_t seed,
                               std::string* split_tensor) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t opset = g.opset();
  std::vector<std::string> added;
  auto init = [&](const std::string& name, at::Tensor t) {
    if (g.initializers.count(name) || g.has_value(name)) {
      throw Error("adapter name '" + name + "' collides with a tensor of the model", ErrorKind::kInternal);
    }
    g.initializers[name] = std::move(t);
    added.push_back(name);
    return name;
  };
  std::string cur = input;
  if (split_tensor) *split_tensor = input;
  int64_t c = a.in.c;
  for (size_t i = 0; i < a.layers.size(); ++i) {
    const Layer& l = a.layers[i];
    if (l.kind == Kind::kSplit) {
      if (split_tensor) *split_tensor = cur;
      continue;
    }
    bool last = true;
    for (size_t j = i + 1; j < a.layers.size(); ++j) last = last && a.layers[j].kind == Kind::kSplit;
    const std::string name = prefix + std::to_string(i) + "_" + Layer{l}.spec().substr(0, Layer{l}.spec().find(':'));
    const std::string out = last ? output : name;
    ir::Node n;
    n.name = name;
    n.inputs = {cur};
    n.outputs = {out};
    switch (l.kind) {
      case Kind::kConv:
      case Kind::kConvTranspose: {
        const bool transposed = l.kind == Kind::kConvTranspose;
        const int64_t fan_in = c * l.kh * l.kw, fan_out = l.channels * l.kh * l.kw;
        at::Tensor w = transposed ? at::empty({c, l.channels, l.kh, l.kw}) : at::empty({l.channels, c, l.kh, l.kw});
        if (relu_follows(a.layers, i)) {
          w.normal_(0.0, std::sqrt(2.0 / static_cast<double>(fan_in)), gen);  // He
        } else {
          const double limit = std::sqrt(6.0 / static_cast<double>(fan_in + fan_out));  // Glorot
          w.uniform_(-limit, limit, gen);
        }
        n.op_type = transposed ? "ConvTranspose" : "Conv";
        n.inputs.push_back(init(name + "/kernel", w));
        if (l.bias) n.inputs.push_back(init(name + "/bias", at::zeros({l.channels})));
        n.attributes.set(ir::Attribute::of_ints("kernel_shape", {l.kh, l.kw}));
        n.attributes.set(ir::Attribute::of_ints("strides", {l.sh, l.sw}));
        n.attributes.set(ir::Attribute::of_ints("pads", {l.ph, l.pw, l.ph, l.pw}));
        if (transposed && (l.oph || l.opw)) n.attributes.set(ir::Attribute::of_ints("output_padding", {l.oph, l.opw}));
        c = l.channels;
        break;
      }
      case Kind::kBatchNorm:
        n.op_type = "BatchNormalization";
        n.inputs.push_back(init(name + "/gamma", at::ones({c})));
        n.inputs.push_back(init(name + "/beta", at::zeros({c})));
        n.inputs.push_back(init(name + "/moving_mean", at::zeros({c})));
        n.inputs.push_back(init(name + "/moving_variance", at::ones({c})));
        n.attributes.set(ir::Attribute::of_float("epsilon", 1e-3f));
        n.attributes.set(ir::Attribute::of_float("momentum", 0.99f));
        break;
      case Kind::kRelu: n.op_type = "Relu"; break;
      case Kind::kRelu6:
        n.op_type = "Clip";
        if (opset < 11) {
          n.attributes.set(ir::Attribute::of_float("min", 0.0f));
          n.attributes.set(ir::Attribute::of_float("max", 6.0f));
        } else {
          n.inputs.push_back(init(name + "/min", at::full({}, 0.0f)));
          n.inputs.push_back(init(name + "/max", at::full({}, 6.0f)));
        }
        break;
      case Kind::kAvgPool:
      case Kind::kMaxPool:
        n.op_type = l.kind == Kind::kAvgPool ? "AveragePool" : "MaxPool";
        n.attributes.set(ir::Attribute::of_ints("kernel_shape", {l.kh, l.kw}));
        n.attributes.set(ir::Attribute::of_ints("strides", {l.sh, l.sw}));
        n.attributes.set(ir::Attribute::of_ints("pads", {l.ph, l.pw, l.ph, l.pw}));
        if (l.kind == Kind::kAvgPool) n.attributes.set(ir::Attribute::of_int("count_include_pad", 0));
        break;
      case Kind::kResize: {
        if (opset < 11) throw Error("a Resize adapter needs opset 11 or later (the model has " + std::to_string(opset) + ")");
        n.op_type = "Resize";
        // sizes = (N, C) of the input at run time + (H, W): the batch stays dynamic.
        ir::Node shape, slice, concat;
        shape.name = name + "/shape";
        shape.op_type = "Shape";
        shape.inputs = {cur};
        shape.outputs = {name + "/shape"};
        slice.name = name + "/batch_channels";
        slice.op_type = "Slice";
        slice.inputs = {name + "/shape", init(name + "/slice_start", at::tensor(std::vector<int64_t>{0})),
                        init(name + "/slice_end", at::tensor(std::vector<int64_t>{2}))};
        slice.outputs = {name + "/batch_channels"};
        concat.name = name + "/sizes";
        concat.op_type = "Concat";
        concat.inputs = {name + "/batch_channels", init(name + "/hw", at::tensor(std::vector<int64_t>{l.out_h, l.out_w}))};
        concat.outputs = {name + "/sizes"};
        concat.attributes.set(ir::Attribute::of_int("axis", 0));
        g.nodes.push_back(shape);
        g.nodes.push_back(slice);
        g.nodes.push_back(concat);
        const std::string sizes = name + "/sizes";
        if (opset >= 13) {
          n.inputs = {cur, "", "", sizes};
        } else {
          n.inputs = {cur, init(name + "/roi", at::empty({0})), init(name + "/scales", at::empty({0})), sizes};
        }
        n.attributes.set(ir::Attribute::of_string("mode", "linear"));
        n.attributes.set(ir::Attribute::of_string("coordinate_transformation_mode", "half_pixel"));
        break;
      }
      case Kind::kSplit: break;
    }
    g.nodes.push_back(std::move(n));
    cur = out;
  }
  if (cur != output) {  // an adapter of only a split marker: pass the input through
    ir::Node n;
    n.name = prefix + "identity";
    n.op_type = "Identity";
    n.inputs = {cur};
    n.outputs = {output};
    g.nodes.push_back(std::move(n));
  }
  return added;
}

}  // namespace graft::adapt

// The oneDNN path (graft/exec/onednn/program.h): every node kind it serves, the reference kernels
// between its nodes, and whole models give the reference executor's outputs within 1e-4
// relative; the engine statistics say which nodes oneDNN ran.
#include "graft/exec/onednn/program.h"
#include "graft/exec/onednn/impl.h"
#include "graft/exec/onednn/native.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <oneapi/dnnl/dnnl.hpp>
#include <thread>

#include "../common/calibrate.h"
#include "../common/graph_builder.h"
#include "graft/core/error.h"
#include "graft/exec/passes/passes.h"
#include "graft/exec/session.h"
#include "graft/zoo/zoo.h"

namespace graft::exec {
namespace {

using testing::Builder;
using onednn::fast_silu;
using onednn::silu_in_place;

SessionOptions fast_options() {
  SessionOptions o;
  o.optimize = true;
  return o;
}

SessionOptions reference_options() {
  SessionOptions o = fast_options();
  o.onednn = false;
  return o;
}

double relative_difference(const TensorMap& want, const TensorMap& got) {
  double worst = 0;
  for (const auto& [name, w] : want) {
    EXPECT_TRUE(got.count(name)) << name;
    if (!got.count(name)) return 1;
    EXPECT_EQ(got.at(name).sizes(), w.sizes()) << name;
    const double scale = std::max(w.abs().max().item<double>(), 1e-12);
    worst = std::max(worst, (got.at(name) - w).abs().max().item<double>() / scale);
  }
  return worst;
}

// Runs `g` on the reference kernels and through oneDNN; returns the oneDNN session's statistics.
EngineStats expect_same(const ir::Graph& g, const TensorMap& inputs,
                        const std::vector<std::string>& outputs = {}, double tolerance = 1e-4) {
  Session reference(g, reference_options()), fast(g, fast_options());
  const TensorMap want = reference.run(inputs, outputs);
  const TensorMap got = fast.run(inputs, outputs);
  EXPECT_LE(relative_difference(want, got), tolerance);
  // The second run reuses the compiled program and its buffers.
  EXPECT_LE(relative_difference(want, fast.run(inputs, outputs)), tolerance);
  EXPECT_TRUE(fast.engine_stats().has_value());
  return fast.engine_stats().value_or(EngineStats{});
}

std::string ops_of(const EngineStats& s) {
  std::string out;
  for (const auto& [op, n] : s.reference_ops) out += op + "x" + std::to_string(n) + " ";  // "Gemmx1 "
  return out;
}

// The steps of a compiled program's run (the second: the first compiles), profiled.
std::vector<StepTime> profiled_steps(const ir::Graph& g, const TensorMap& inputs) {
  Session fast(g, fast_options());
  fast.run(inputs);
  std::vector<StepTime> steps;
  RunOptions ro;
  ro.profile = &steps;
  fast.run(inputs, {}, ro);
  return steps;
}

struct ConvCase {
  int64_t group, stride, dilation;
  std::vector<int64_t> pads;
  std::string auto_pad, activation;
  bool bias;
};

TEST(OneDnnTest, ConvolutionsWithEveryGeometryAndFusedActivation) {
  const std::vector<ConvCase> cases = {
      {1, 1, 1, {1, 1, 1, 1}, "", "Relu", true},
      {1, 2, 1, {0, 1, 1, 0}, "", "", false},          // asymmetric pads
      {8, 1, 1, {1, 1, 1, 1}, "", "Clip", true},       // depthwise, ReLU6
      {8, 2, 1, {}, "SAME_UPPER", "HardSwish", true},  // depthwise, strided
      {2, 1, 2, {2, 2, 2, 2}, "", "LeakyRelu", true},  // grouped, dilated
      {1, 2, 1, {}, "SAME_LOWER", "Sigmoid", false},
      {1, 1, 1, {}, "VALID", "Tanh", true},
      {1, 3, 1, {0, 0, 0, 0}, "", "HardSigmoid", true},
  };
  at::manual_seed(3);
  for (const auto& c : cases) {
    Builder b(13);
    b.input("x", {2, 8, 11, 13});
    std::vector<std::string> in{"x", b.init("w", at::randn({16, 8 / c.group, 3, 3}))};
    if (c.bias) in.push_back(b.init("b", at::randn({16})));
    auto& conv = b.node("Conv", in, {c.activation.empty() ? "y" : "c"});
    conv.attributes.set(ir::Attribute::of_int("group", c.group));
    conv.attributes.set(ir::Attribute::of_ints("strides", {c.stride, c.stride}));
    conv.attributes.set(ir::Attribute::of_ints("dilations", {c.dilation, c.dilation}));
    conv.attributes.set(ir::Attribute::of_ints("kernel_shape", {3, 3}));
    if (!c.pads.empty()) conv.attributes.set(ir::Attribute::of_ints("pads", c.pads));
    if (!c.auto_pad.empty()) conv.attributes.set(ir::Attribute::of_string("auto_pad", c.auto_pad));
    if (c.activation == "Clip") {
      b.node("Clip", {"c", b.init("lo", at::scalar_tensor(0.f)), b.init("hi", at::scalar_tensor(6.f))}, {"y"});
    } else if (!c.activation.empty()) {
      b.node(c.activation, {"c"}, {"y"});
    }
    const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({2, 8, 11, 13}) * 3}});
    EXPECT_EQ(s.onednn_nodes, 1) << "group " << c.group << " " << c.activation << " " << ops_of(s);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
  }
}

TEST(OneDnnTest, ResidualSumInPlaceAndIntoACopy) {
  at::manual_seed(4);
  Builder b;
  b.input("x", {1, 16, 9, 9});
  auto conv = [&](const std::string& in, const std::string& out, const std::string& w) {
    b.node("Conv", {in, b.init(w, at::randn({16, 16, 3, 3}) * 0.2)}, {out})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  };
  conv("x", "a", "w1");
  conv("a", "c1", "w2");
  b.node("Add", {"c1", "a"}, {"s1"});  // a's last use: the sum accumulates in a's buffer
  b.node("Relu", {"s1"}, {"r1"});
  conv("r1", "c2", "w3");
  b.node("Add", {"r1", "c2"}, {"s2"});  // r1 is read again below: a copy
  b.node("Mul", {"s2", "r1"}, {"y"});
  const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({1, 16, 9, 9})}});
  EXPECT_EQ(s.onednn_nodes, 4) << ops_of(s);  // three convolutions (two with sums), the Mul
  EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
}

TEST(OneDnnTest, PoolingWithPadsAndCeilMode) {
  struct Case {
    std::string op;
    std::vector<int64_t> kernel, strides, pads;
    int64_t ceil, include_pad;
    bool served;
  };
  const std::vector<Case> cases = {
      {"MaxPool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0, true},
      {"MaxPool", {3, 3}, {2, 2}, {0, 0, 0, 0}, 1, 0, true},
      {"MaxPool", {2, 3}, {1, 2}, {0, 1, 1, 0}, 0, 0, true},
      {"AveragePool", {3, 3}, {1, 1}, {1, 1, 1, 1}, 0, 1, true},
      {"AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 0, 0, true},
      {"AveragePool", {3, 3}, {2, 2}, {0, 0, 0, 0}, 1, 0, true},
      // Counting pads but not the ceil overhang is not oneDNN's rule: the reference kernel runs.
      {"AveragePool", {3, 3}, {2, 2}, {1, 1, 1, 1}, 1, 1, false},
  };
  at::manual_seed(5);
  for (const auto& c : cases) {
    Builder b;
    b.input("x", {2, 5, 10, 12});
    auto& n = b.node(c.op, {"x"}, {"y"});
    n.attributes.set(ir::Attribute::of_ints("kernel_shape", c.kernel));
    n.attributes.set(ir::Attribute::of_ints("strides", c.strides));
    n.attributes.set(ir::Attribute::of_ints("pads", c.pads));
    n.attributes.set(ir::Attribute::of_int("ceil_mode", c.ceil));
    if (c.op == "AveragePool") n.attributes.set(ir::Attribute::of_int("count_include_pad", c.include_pad));
    const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({2, 5, 10, 12})}});
    EXPECT_EQ(s.onednn_nodes, c.served ? 1 : 0) << c.op << " ceil " << c.ceil;
  }
  Builder b;
  b.input("x", {3, 7, 6, 5});
  b.node("GlobalAveragePool", {"x"}, {"y"});
  EXPECT_EQ(expect_same(b.done({"y"}), {{"x", at::randn({3, 7, 6, 5})}}).onednn_nodes, 1);
}

TEST(OneDnnTest, ElementwiseBroadcastConcatAndStandaloneActivations) {
  at::manual_seed(6);
  Builder b;
  b.input("x", {2, 16, 7, 7});
  b.input("v", {2, 16, 1, 1});
  b.node("Conv", {"x", b.init("w1", at::randn({16, 16, 1, 1}))}, {"a"});
  b.node("Conv", {"x", b.init("w2", at::randn({32, 16, 3, 3}))}, {"c"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Concat", {"a", "c", "x"}, {"cat"}).attributes.set(ir::Attribute::of_int("axis", -3));
  b.node("Mul", {b.init("scale", at::randn({64, 1, 1})), "cat"}, {"m"});  // swapped, broadcast
  b.node("Add", {"m", b.init("shift", at::randn({1, 64, 1, 1}))}, {"p"});
  b.node("Sub", {"p", "cat"}, {"d"});
  b.node("LeakyRelu", {"d"}, {"l"}).attributes.set(ir::Attribute::of_float("alpha", 0.2f));
  b.node("Clip", {"l", b.init("lo", at::scalar_tensor(-1.f)), b.init("hi", at::scalar_tensor(2.f))}, {"k"});
  b.node("HardSigmoid", {"k"}, {"h"});
  b.node("Concat", {"h", "cat"}, {"h2"}).attributes.set(ir::Attribute::of_int("axis", 1));
  b.node("Sigmoid", {"h2"}, {"s"});
  b.node("Tanh", {"s"}, {"t"});
  b.node("HardSwish", {"t"}, {"hs"});
  b.node("Conv", {"hs", b.init("w3", at::randn({16, 128, 1, 1}))}, {"q"});
  b.node("Div", {"q", "v"}, {"y1"});                            // broadcast graph input
  b.node("Sub", {b.init("one", at::ones({1, 16, 1, 1})), "q"}, {"y2"});  // broadcast first: ATen
  b.node("Concat", {"q", "q"}, {"y3"}).attributes.set(ir::Attribute::of_int("axis", 2));  // ATen
  const EngineStats s = expect_same(b.done({"y1", "y2", "y3"}),
                                    {{"x", at::randn({2, 16, 7, 7})}, {"v", at::rand({2, 16, 1, 1}) + 1}});
  EXPECT_EQ(s.reference_nodes, 2) << ops_of(s);
  EXPECT_EQ(s.reference_ops.count("Sub"), 1u) << ops_of(s);
  EXPECT_EQ(s.reference_ops.count("Concat"), 1u) << ops_of(s);
}

TEST(OneDnnTest, ReferenceKernelsBetweenOneDnnNodesAndAnyRequestedTensor) {
  at::manual_seed(7);
  Builder b;
  b.input("x", {2, 4, 8, 8});
  b.node("Conv", {"x", b.init("w1", at::randn({8, 4, 3, 3}))}, {"a"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  // Unsqueeze and Squeeze give views of the oneDNN buffer they read; the buffer is reused later.
  b.node("Unsqueeze", {"a", b.init("ax", at::tensor({4}, at::kLong))}, {"r"});
  b.node("Squeeze", {"r", b.init("ax2", at::tensor({4}, at::kLong))}, {"r2"});
  b.node("Conv", {"r2", b.init("w2", at::randn({8, 8, 3, 3}))}, {"c"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Relu", {"c"}, {"d"});
  b.node("Conv", {"d", b.init("w3", at::randn({8, 8, 3, 3}))}, {"e"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("GlobalAveragePool", {"e"}, {"g"});
  b.node("Flatten", {"g"}, {"f"});
  b.node("Gemm", {"f", b.init("gw", at::randn({3, 8})), b.init("gb", at::randn({3}))}, {"y"})
      .attributes.set(ir::Attribute::of_int("transB", 1));
  const ir::Graph g = b.done({"y"});
  const TensorMap in{{"x", at::randn({2, 4, 8, 8})}};
  const EngineStats s = expect_same(g, in);
  EXPECT_EQ(s.onednn_nodes, 6) << ops_of(s);
  EXPECT_EQ(ops_of(s), "Squeezex1 Unsqueezex1 ");
  // Intermediates, a graph input and an initializer may be asked for as well.
  expect_same(g, in, {"a", "r", "d", "e", "y", "x", "gw"});
}

TEST(OneDnnTest, GemmClassifiersWithAndWithoutTransposeAndBias) {
  at::manual_seed(10);
  struct Case {
    int64_t trans_b;
    std::vector<int64_t> bias;  // empty: none
    float alpha;
    bool served;
  };
  for (const Case& c : std::vector<Case>{{1, {5}, 1.f, true}, {0, {1, 5}, 1.f, true}, {0, {}, 1.f, true},
                                         {1, {5}, 0.5f, false}, {1, {3, 5}, 1.f, false}}) {
    Builder b;
    b.input("x", {3, 7});
    b.node("Relu", {"x"}, {"r"});
    std::vector<std::string> in{"r", b.init("w", c.trans_b ? at::randn({5, 7}) : at::randn({7, 5}))};
    if (!c.bias.empty()) in.push_back(b.init("c", at::randn(c.bias)));
    auto& g = b.node("Gemm", in, {"y"});
    g.attributes.set(ir::Attribute::of_int("transB", c.trans_b));
    g.attributes.set(ir::Attribute::of_float("alpha", c.alpha));
    const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({3, 7})}});
    EXPECT_EQ(s.reference_ops.count("Gemm"), c.served ? 0u : 1u) << c.trans_b << " " << c.bias.size();
  }
}

TEST(OneDnnTest, EachInputShapeCompilesItsOwnProgram) {
  at::manual_seed(8);
  Builder b;
  b.input("x", {ir::Dim("N"), 3, ir::Dim("H"), ir::Dim("W")});
  b.node("Conv", {"x", b.init("w", at::randn({8, 3, 3, 3}))}, {"c"})
      .attributes.set(ir::Attribute::of_ints("strides", {2, 2}));
  b.node("Relu", {"c"}, {"y"});
  const ir::Graph g = b.done({"y"});
  Session reference(g, reference_options()), fast(g, fast_options());
  // More shapes than the session keeps programs for, then the first ones again.
  for (int64_t size : {9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 9, 10, 17}) {
    const TensorMap in{{"x", at::randn({size % 4 + 1, 3, size, size + 1})}};
    EXPECT_LE(relative_difference(reference.run(in), fast.run(in)), 1e-4) << size;
  }
  EXPECT_THROW(fast.run({{"x", at::randn({1, 4, 9, 9})}}), Error);  // wrong channels
}

TEST(OneDnnTest, LinearHalfPixelResizeWhereTheCoordinatesAgree) {
  struct Case {
    std::string transform;
    std::vector<int64_t> sizes;  // output sizes, or
    std::vector<float> scales;
    std::string mode;
    bool served;
  };
  const std::vector<Case> cases = {
      {"half_pixel", {2, 20, 17, 17}, {}, "linear", true},            // down, as graft's adapters
      {"half_pixel", {}, {1, 1, 2, 3}, "linear", true},               // up, exact scales
      {"pytorch_half_pixel", {2, 20, 40, 7}, {}, "linear", true},
      {"half_pixel", {}, {1, 1, 0.6f, 0.6f}, "linear", false},        // 29 x 0.6: coordinates use 0.6
      {"pytorch_half_pixel", {2, 20, 1, 9}, {}, "linear", false},     // a size of 1
      {"align_corners", {2, 20, 17, 17}, {}, "linear", false},
      {"half_pixel", {2, 20, 58, 58}, {}, "nearest", false},
  };
  at::manual_seed(11);
  for (const Case& c : cases) {
    Builder b(13);
    b.input("x", {2, 8, 29, 29});
    b.node("Conv", {"x", b.init("w", at::randn({20, 8, 1, 1}))}, {"c"});  // a oneDNN layout
    std::vector<std::string> in{"c", ""};
    if (c.sizes.empty()) {
      in.push_back(b.init("scales", at::tensor(c.scales)));
    } else {
      in.push_back("");
      in.push_back(b.init("sizes", at::tensor(c.sizes)));
    }
    auto& r = b.node("Resize", in, {"r"});
    r.attributes.set(ir::Attribute::of_string("mode", c.mode));
    r.attributes.set(ir::Attribute::of_string("coordinate_transformation_mode", c.transform));
    b.node("Relu", {"r"}, {"y"});
    const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({2, 8, 29, 29})}});
    EXPECT_EQ(s.reference_ops.count("Resize"), c.served ? 0u : 1u) << c.transform << " " << c.mode;
  }
}

TEST(OneDnnTest, SpatialReduceMeanIsGlobalAveragePooling) {
  struct Case {
    std::vector<int64_t> axes;
    int64_t keepdims;
    bool served;
  };
  at::manual_seed(12);
  for (const Case& c : std::vector<Case>{{{2, 3}, 1, true}, {{-1, -2}, 0, true}, {{1}, 1, false}, {{3}, 0, false}}) {
    Builder b;
    b.input("x", {3, 5, 6, 7});
    b.node("Conv", {"x", b.init("w", at::randn({20, 5, 3, 3}))}, {"a"});  // 20: not a block of 16
    auto& m = b.node("ReduceMean", {"a"}, {"m"});
    m.attributes.set(ir::Attribute::of_ints("axes", c.axes));
    m.attributes.set(ir::Attribute::of_int("keepdims", c.keepdims));
    std::vector<std::string> outputs{"m"};
    if (c.served && c.keepdims == 0) {  // [N, C] into a classifier
      b.node("Gemm", {"m", b.init("gw", at::randn({4, 20})), b.init("gb", at::randn({4}))}, {"y"})
          .attributes.set(ir::Attribute::of_int("transB", 1));
      outputs.push_back("y");
    }
    const EngineStats s = expect_same(b.done(outputs), {{"x", at::randn({3, 5, 6, 7})}});
    EXPECT_EQ(s.reference_ops.count("ReduceMean"), c.served ? 0u : 1u) << c.axes;
  }
}

TEST(OneDnnTest, ConstantSpatialPadAndClassifierSoftmax) {
  struct Case {
    int64_t opset;
    std::vector<int64_t> pads;
    float value;
    std::string mode;
    bool after_conv, served;
  };
  const std::vector<Case> cases = {
      {13, {0, 0, 0, 0, 0, 0, 1, 1}, 0.f, "constant", true, true},  // MobileNet's pad before a strided conv
      {13, {0, 0, 2, 1, 0, 0, 0, 3}, 1.5f, "constant", true, true},
      {13, {0, 0, 1, 1, 0, 0, 1, 1}, 0.f, "constant", false, true},  // a plain graph input
      {10, {0, 0, 1, 0, 0, 0, 2, 1}, -2.f, "constant", true, true},  // pads and value as attributes
      {13, {0, 1, 0, 0, 0, 1, 0, 0}, 0.f, "constant", true, false},  // channels
      {13, {0, 0, -1, 0, 0, 0, 1, 0}, 0.f, "constant", true, false},  // a crop
      {13, {0, 0, 1, 1, 0, 0, 1, 1}, 0.f, "reflect", true, false},
  };
  at::manual_seed(16);
  for (const Case& c : cases) {
    Builder b(c.opset);
    b.input("x", {2, 20, 9, 8});
    std::string in = "x";
    if (c.after_conv) {
      b.node("Conv", {"x", b.init("w", at::randn({20, 20, 1, 1}))}, {"c"});
      in = "c";
    }
    if (c.opset < 11) {
      auto& p = b.node("Pad", {in}, {"p"});
      p.attributes.set(ir::Attribute::of_ints("pads", c.pads));
      p.attributes.set(ir::Attribute::of_float("value", c.value));
      p.attributes.set(ir::Attribute::of_string("mode", c.mode));
    } else {
      b.node("Pad", {in, b.init("pads", at::tensor(c.pads)), b.init("v", at::scalar_tensor(c.value))}, {"p"})
          .attributes.set(ir::Attribute::of_string("mode", c.mode));
    }
    b.node("MaxPool", {"p"}, {"y"}).attributes.set(ir::Attribute::of_ints("kernel_shape", {3, 3}));
    const EngineStats s = expect_same(b.done({"p", "y"}), {{"x", at::randn({2, 20, 9, 8})}});
    EXPECT_EQ(s.reference_ops.count("Pad"), c.served ? 0u : 1u) << c.mode << " " << c.pads;
  }
  for (int64_t opset : {11, 13}) {
    for (int64_t axis : {1, -1, 0}) {
      Builder b(opset);
      b.input("x", {3, 6});
      b.node("Gemm", {"x", b.init("w", at::randn({6, 10})), b.init("b", at::randn({10}))}, {"l"});
      b.node("Softmax", {"l"}, {"y"}).attributes.set(ir::Attribute::of_int("axis", axis));
      const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({3, 6}) * 3}});
      EXPECT_EQ(s.reference_ops.count("Softmax"), axis == 0 ? 1u : 0u) << opset << " axis " << axis;
    }
  }
}

TEST(OneDnnTest, FlattenAndReshapeReadTheBufferUnderAnotherShape) {
  at::manual_seed(17);
  {
    Builder b(14);
    b.input("x", {2, 16, 6, 6});
    b.node("Conv", {"x", b.init("w", at::randn({32, 16, 3, 3}))}, {"c"});  // nhwc: Flatten needs plain
    b.node("Flatten", {"c"}, {"f"});
    b.node("GlobalAveragePool", {"c"}, {"g"});
    b.node("Flatten", {"g"}, {"fg"});  // [N, C, 1, 1]: the same bytes, no copy
    b.node("Reshape", {"c", b.init("s", at::tensor(std::vector<int64_t>{0, -1, 4}))}, {"r"});
    b.node("Reshape", {"g", b.init("s0", at::tensor(std::vector<int64_t>{2, 32}))}, {"rg"})
        .attributes.set(ir::Attribute::of_int("allowzero", 1));
    b.node("Gemm", {"fg", b.init("gw", at::randn({32, 5}))}, {"y"});
    const EngineStats s = expect_same(b.done({"f", "r", "rg", "y"}), {{"x", at::randn({2, 16, 6, 6})}});
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
  }
  {
    // A residual sum may accumulate in place only into a buffer nothing else still reads: here
    // `r` is `a`'s bytes under another name and is read after the sum.
    Builder b;
    b.input("x", {2, 16, 1, 1});
    b.node("Conv", {"x", b.init("w1", at::randn({16, 16, 1, 1}))}, {"a"});
    b.node("Reshape", {"a", b.init("s", at::tensor(std::vector<int64_t>{2, 16, 1, 1}))}, {"r"});
    b.node("Conv", {"x", b.init("w2", at::randn({16, 16, 1, 1}))}, {"c"});
    b.node("Add", {"c", "a"}, {"sum"});
    b.node("Mul", {"sum", "r"}, {"y"});
    const EngineStats s = expect_same(b.done({"y"}), {{"x", at::randn({2, 16, 1, 1})}});
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
  }
}

// 3x3 stride-1 convolutions with enough channels, a residual sum, and a concat of their
// (blocked) output with a direct convolution's.
ir::Graph winograd_graph() {
  Builder b;
  b.input("x", {2, 64, 14, 14});
  auto conv3 = [&](const std::string& in, const std::string& out, const std::string& w) {
    b.node("Conv", {in, b.init(w, at::randn({64, 64, 3, 3}) * 0.05), b.init(w + "_b", at::randn({64}))}, {out})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  };
  conv3("x", "a", "w1");
  b.node("Relu", {"a"}, {"r"});
  conv3("r", "c", "w2");
  b.node("Add", {"c", "x"}, {"s"});
  b.node("Relu", {"s"}, {"t"});
  b.node("Conv", {"x", b.init("w3", at::randn({32, 64, 1, 1}) * 0.1)}, {"p"});
  b.node("Concat", {"t", "p"}, {"cat"}).attributes.set(ir::Attribute::of_int("axis", 1));
  b.node("Conv", {"cat", b.init("w4", at::randn({16, 96, 1, 1}) * 0.1)}, {"y"});
  return b.done({"y"});
}

TEST(OneDnnTest, WinogradConvolutionsAndTheConcatAfterThem) {
  at::manual_seed(13);
  const ir::Graph g = winograd_graph();
  const TensorMap in{{"x", at::randn({2, 64, 14, 14})}};
  const EngineStats s = expect_same(g, in);
  EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
  const std::vector<StepTime> steps = profiled_steps(g, in);
  int winograd = 0;
  for (const auto& st : steps) {
    if (st.kernel.find("wino") != std::string::npos) ++winograd;
    if (st.op == "Concat") {
      EXPECT_EQ(st.kernel.find("ref"), std::string::npos) << st.kernel;  // not the slow one
    }
  }
  // oneDNN has Winograd kernels for AVX-512 only.
  if (dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core) {
    EXPECT_EQ(winograd, 2);
  }
}

// MobileNet's separable blocks at a size where the depthwise convolutions become post-ops of
// the pointwise ones before them (intermediates of >= 16 MiB; 8 MiB a batch image): a stem
// reading the plain RGB input, a depthwise block, then two pointwise+depthwise pairs: stride 1
// with (1, 1) pads and no bias, stride 2 with Keras's (0, 1) pads. `also`: more graph outputs.
ir::Graph separable_graph(const std::vector<std::string>& also = {}) {
  Builder b;
  b.input("x", {-1, 3, 256, 256});
  auto conv = [&](const std::string& in, const std::string& out, at::Tensor w, int64_t group,
                  int64_t stride, std::vector<int64_t> pads, bool bias) {
    std::vector<std::string> ins{in, b.init(out + "_w", w * 0.3)};
    if (bias) ins.push_back(b.init(out + "_b", at::randn({w.size(0)}) * 0.1));
    auto& n = b.node("Conv", ins, {out + "_c"});
    n.attributes.set(ir::Attribute::of_int("group", group));
    n.attributes.set(ir::Attribute::of_ints("strides", {stride, stride}));
    n.attributes.set(ir::Attribute::of_ints("pads", pads));
    b.node("Clip", {out + "_c", b.init(out + "_lo", at::scalar_tensor(0.f)), b.init(out + "_hi", at::scalar_tensor(6.f))},
           {out});
  };
  conv("x", "stem", at::randn({16, 3, 3, 3}), 1, 1, {1, 1, 1, 1}, true);
  conv("stem", "dw0", at::randn({16, 1, 3, 3}), 16, 1, {1, 1, 1, 1}, true);
  conv("dw0", "pw1", at::randn({32, 16, 1, 1}), 1, 1, {0, 0, 0, 0}, true);  // 8 MiB an image
  conv("pw1", "dw1", at::randn({32, 1, 3, 3}), 32, 1, {1, 1, 1, 1}, false);
  conv("dw1", "pw2", at::randn({32, 32, 1, 1}), 1, 1, {0, 0, 0, 0}, true);  // 8 MiB an image
  conv("pw2", "dw2", at::randn({32, 1, 3, 3}), 32, 2, {0, 0, 1, 1}, true);   // Keras pads
  conv("dw2", "y", at::randn({16, 32, 1, 1}), 1, 1, {0, 0, 0, 0}, true);     // 1 MiB an image
  std::vector<std::string> outputs{"y"};
  outputs.insert(outputs.end(), also.begin(), also.end());
  return b.done(outputs);
}

TEST(OneDnnTest, DepthwiseConvolutionsFusedIntoThePointwiseOnesBefore) {
  at::manual_seed(16);
  const TensorMap in{{"x", at::rand({4, 3, 256, 256})}};
  const bool avx512 = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core;
  for (const bool pw1_wanted : {false, true}) {
    // pw1 as a graph output too: it must be written, so dw1 stays a step of its own.
    const ir::Graph g = separable_graph(pw1_wanted ? std::vector<std::string>{"pw1"} : std::vector<std::string>{});
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.onednn_nodes, 7) << ops_of(s);  // fused depthwise nodes count as served
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    const std::vector<StepTime> steps = profiled_steps(g, in);
    std::vector<std::string> fused;
    int reorders = 0;
    for (const auto& st : steps) {
      if (st.op == "Conv+DepthwiseConv") {
        fused.push_back(st.node);
        EXPECT_EQ(st.kernel.find("ref"), std::string::npos) << st.kernel;
      }
      if (st.op == "Reorder") ++reorders;
    }
    if (!avx512) continue;  // oneDNN fuses in nChw16c, with AVX-512 kernels
    const std::string pw1 = g.nodes[4].name, dw1 = g.nodes[6].name;  // Conv, Clip, Conv, ...
    const std::string pw2 = g.nodes[8].name, dw2 = g.nodes[10].name;
    if (pw1_wanted) {
      EXPECT_EQ(fused, std::vector<std::string>{pw2 + "+" + dw2});
    } else {
      EXPECT_EQ(fused, (std::vector<std::string>{pw1 + "+" + dw1, pw2 + "+" + dw2}));
      // The stem reads the plain input and writes nChw16c, and the last (pointwise)
      // convolution reads nChw16c too: nothing is reordered.
      EXPECT_EQ(reorders, 0);
    }
  }
}

TEST(OneDnnTest, DepthwiseFusionFromSixteenMebibyteIntermediates) {
  // The same blocks: at batch 2 both pairs' intermediates are 16 MiB (fused), at batch 1 8 MiB
  // (two steps each, the intermediate written out).
  at::manual_seed(18);
  const ir::Graph g = separable_graph();
  for (const int64_t batch : {1, 2}) {
    const TensorMap in{{"x", at::rand({batch, 3, 256, 256})}};
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    int fused = 0;
    for (const auto& st : profiled_steps(g, in)) fused += st.op == "Conv+DepthwiseConv" ? 1 : 0;
    if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) continue;
    EXPECT_EQ(fused, batch == 2 ? 2 : 0) << "batch " << batch;
  }
}

// A ResNet bottleneck at batch `batch`: 1x1, 3x3 (Winograd, nChw16c out), 1x1 to 256 channels
// plus a downsampled residual, Relu.
ir::Graph bottleneck_graph(int64_t batch) {
  Builder b;
  b.input("x", {batch, 64, 56, 56});
  auto conv = [&](const std::string& in, const std::string& out, at::Tensor w, int64_t pad) {
    auto& n = b.node("Conv", {in, b.init(out + "_w", w * 0.1), b.init(out + "_b", at::randn({w.size(0)}) * 0.1)},
                     {out});
    n.attributes.set(ir::Attribute::of_ints("pads", {pad, pad, pad, pad}));
  };
  conv("x", "c1", at::randn({64, 64, 1, 1}), 0);
  b.node("Relu", {"c1"}, {"r1"});
  conv("r1", "c2", at::randn({64, 64, 3, 3}), 1);
  b.node("Relu", {"c2"}, {"r2"});
  conv("r2", "c3", at::randn({256, 64, 1, 1}), 0);
  conv("x", "down", at::randn({256, 64, 1, 1}), 0);
  b.node("Add", {"c3", "down"}, {"sum"});
  b.node("Relu", {"sum"}, {"y"});
  return b.done({"y"});
}

TEST(OneDnnTest, LargeResidualSumsRunBlockedAfterWinograd) {
  // The bottleneck's output is 3.2 MB an image: at batch 2 (6.4 MB) the last convolution sums
  // in nChw16c, reading the Winograd output as it is, and the downsample writes its residual in
  // nChw16c; at batch 1 it sums in NHWC after a reorder.
  at::manual_seed(19);
  for (const int64_t batch : {1, 2}) {
    const ir::Graph g = bottleneck_graph(batch);
    const TensorMap in{{"x", at::rand({batch, 64, 56, 56})}};
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) continue;  // Winograd needs it
    std::string sum_kernel, down_kernel, winograd_kernel;
    int winograd_out_reorders = 0;  // steps reordering the Winograd output ("r2")
    for (const auto& st : profiled_steps(g, in)) {
      if (st.op == "Reorder" && st.node == "r2") ++winograd_out_reorders;
      if (st.node == g.nodes[2].name) winograd_kernel = st.kernel;           // c2
      if (st.node == g.nodes[4].name && st.op != "Reorder") sum_kernel = st.kernel;   // c3 + down + Relu
      if (st.node == g.nodes[5].name && st.op != "Reorder") down_kernel = st.kernel;  // down
    }
    EXPECT_NE(winograd_kernel.find("wino"), std::string::npos) << winograd_kernel;
    if (batch == 2) {
      EXPECT_EQ(sum_kernel.rfind("jit_1x1", 0), 0u) << sum_kernel;  // oneDNN's nChw16c 1x1 kernel
      EXPECT_EQ(down_kernel.rfind("jit_1x1", 0), 0u) << down_kernel;
      EXPECT_EQ(winograd_out_reorders, 0);
    } else {
      EXPECT_EQ(sum_kernel.rfind("brgconv_1x1", 0), 0u) << sum_kernel;  // its NHWC one
      EXPECT_EQ(winograd_out_reorders, 1);
    }
  }
}

TEST(OneDnnTest, ThinWinogradOnlyWithThousandsOfTilesAndTheStemWritesItsLayout) {
  // An RGB stem, then a 32 -> 32 3x3 convolution (in x out / (in + out) = 16): Winograd from
  // 2048 4x4 output tiles (batch 2 at 128x128), direct below (batch 1).
  at::manual_seed(17);
  Builder b;
  b.input("x", {-1, 3, 128, 128});
  b.node("Conv", {"x", b.init("w1", at::randn({32, 3, 3, 3}) * 0.3)}, {"s"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Relu", {"s"}, {"r"});
  b.node("Conv", {"r", b.init("w2", at::randn({32, 32, 3, 3}) * 0.1)}, {"y"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  const ir::Graph g = b.done({"y"});
  const bool avx512 = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core;
  for (const int64_t batch : {1, 2}) {
    const TensorMap in{{"x", at::rand({batch, 3, 128, 128})}};
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    const std::vector<StepTime> steps = profiled_steps(g, in);
    if (!avx512) continue;  // oneDNN has Winograd kernels for AVX-512 only
    std::vector<std::string> ops, kernels;
    for (const auto& st : steps) {
      ops.push_back(st.op);
      kernels.push_back(st.kernel);
    }
    // At batch 2 the stem reads the plain input and writes the blocked layout Winograd reads
    // (no reorder step); at batch 1 both run direct in oneDNN's layout, the input reordered to it.
    const std::vector<std::string> want = batch == 2 ? std::vector<std::string>{"graft.FusedConv", "Conv"}
                                                     : std::vector<std::string>{"Reorder", "graft.FusedConv", "Conv"};
    ASSERT_EQ(ops, want);
    EXPECT_EQ(kernels.back().find("wino") != std::string::npos, batch == 2) << kernels.back();
  }
}

// Which kernel runs a 3x3 convolution (the convolution's steps' kernels, in order).
std::vector<std::string> conv_kernels(const ir::Graph& g, const TensorMap& in) {
  std::vector<std::string> kernels;
  for (const auto& st : profiled_steps(g, in)) {
    if (st.op != "Reorder") kernels.push_back(st.kernel);
  }
  return kernels;
}

TEST(OneDnnTest, SixteenChannelStemReadsThePlainInputAndWritesNhwc) {
  // MobileNetV3's stem: 3 -> 16, stride 2, HardSwish. With 16 channels nChw16c is nhwc byte
  // for byte, so the stem reads the plain input (no reorder step) and the pointwise
  // convolution after it reads its output as nhwc (no reorder either).
  at::manual_seed(31);
  Builder b;
  b.input("x", {-1, 3, 64, 64});
  auto& stem = b.node("Conv", {"x", b.init("w1", at::randn({16, 3, 3, 3}) * 0.3), b.init("b1", at::randn({16}))}, {"s"});
  stem.attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  stem.attributes.set(ir::Attribute::of_ints("strides", {2, 2}));
  b.node("HardSwish", {"s"}, {"a"});
  b.node("Conv", {"a", b.init("w2", at::randn({24, 16, 1, 1}) * 0.2)}, {"y"});
  const ir::Graph g = b.done({"y"});
  for (const int64_t batch : {1, 3}) {
    const TensorMap in{{"x", at::randn({batch, 3, 64, 64})}};
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) continue;
    std::vector<std::string> ops;
    for (const auto& st : profiled_steps(g, in)) ops.push_back(st.op);
    EXPECT_EQ(ops, (std::vector<std::string>{"graft.FusedConv", "Conv"})) << "batch " << batch;
  }
}

TEST(OneDnnTest, WinogradAtBatchOneOnSmallMapsOneDnnsOrGraftsOwn) {
  // At batch 1 a 14x14 map has 16 4x4 output tiles, under the 32 that oneDNN's Winograd
  // otherwise needs. A 512 -> 512 3x3 there still runs oneDNN's F(2x2,3x3); up to 256 -> 256 it
  // runs graft's own (nhwc, no reorders), as on odd sides (15x15, where oneDNN would pick
  // F(4x4,3x3)) and smaller convolutions (128 -> 128); a 7x7 map stays direct.
  at::manual_seed(23);
  const bool avx512 = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core;
  enum Kind { kOneDnn, kOwn, kDirect };
  struct Case {
    int64_t channels, side;
    Kind kind;
  };
  for (const Case c : {Case{512, 14, kOneDnn}, Case{256, 14, kOwn}, Case{256, 15, kOwn}, Case{128, 14, kOwn},
                       Case{256, 7, kDirect}}) {
    Builder b;
    b.input("x", {1, c.channels, c.side, c.side});
    b.node("Conv", {"x", b.init("w", at::randn({c.channels, c.channels, 3, 3}) * 0.02), b.init("b", at::randn({c.channels}))},
           {"a"})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    b.node("Relu", {"a"}, {"y"});
    const ir::Graph g = b.done({"y"});
    const TensorMap in{{"x", at::randn({1, c.channels, c.side, c.side})}};
    const EngineStats s = expect_same(g, in);
    EXPECT_EQ(s.reference_nodes, 0) << ops_of(s);
    if (!avx512) continue;  // both Winograd kernels need AVX-512
    const std::vector<std::string> kernels = conv_kernels(g, in);
    const std::string what = std::to_string(c.channels) + " channels at " + std::to_string(c.side) + "x" +
                             std::to_string(c.side) + ": " + ::testing::PrintToString(kernels);
    switch (c.kind) {
      case kOneDnn:
        ASSERT_EQ(kernels.size(), 1u) << what;
        EXPECT_NE(kernels[0].find("wino"), std::string::npos) << what;
        break;
      case kOwn:
        ASSERT_EQ(kernels.size(), 3u) << what;
        EXPECT_EQ(kernels[0], "graft:winograd_input") << what;
        EXPECT_EQ(kernels[2], "graft:winograd_output") << what;
        break;
      case kDirect:
        ASSERT_EQ(kernels.size(), 1u) << what;
        EXPECT_EQ(kernels[0].find("wino"), std::string::npos) << what;
        break;
    }
  }
}

TEST(OneDnnTest, GraftsOwnWinogradOnOddSidesTailsActivationsAndBatches) {
  // Every edge of graft's F(2x2,3x3): odd sides (the last row and column of tiles half
  // outside), channel counts that are not multiples of 16 (masked tails), no bias, ReLU,
  // leaky ReLU, ReLU6 and none, two samples, and a convolution reading another one's output
  // (an arena buffer) as well as the graph input (reordered from NCHW).
  struct Case {
    int64_t batch, in, out, side;
    std::string activation;
    bool bias;
  };
  at::manual_seed(29);
  for (const Case& c : {Case{1, 72, 100, 13, "Relu", true}, Case{2, 64, 64, 9, "", false},
                       Case{1, 96, 80, 17, "LeakyRelu", true}, Case{1, 64, 144, 8, "Clip", true},
                       Case{2, 80, 72, 11, "Relu", false}}) {
    Builder b(13);
    b.input("x", {c.batch, c.in, c.side, c.side});
    std::vector<std::string> first{"x", b.init("w1", at::randn({c.in, c.in, 3, 3}) * 0.05)};
    if (c.bias) first.push_back(b.init("b1", at::randn({c.in})));
    b.node("Conv", first, {"h"}).attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    std::vector<std::string> second{"h", b.init("w2", at::randn({c.out, c.in, 3, 3}) * 0.05)};
    if (c.bias) second.push_back(b.init("b2", at::randn({c.out})));
    b.node("Conv", second, {c.activation.empty() ? "y" : "c"}).attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    if (c.activation == "Clip") {
      b.node("Clip", {"c", b.init("lo", at::scalar_tensor(0.f)), b.init("hi", at::scalar_tensor(6.f))}, {"y"});
    } else if (c.activation == "LeakyRelu") {
      b.node("LeakyRelu", {"c"}, {"y"}).attributes.set(ir::Attribute::of_float("alpha", 0.2f));
    } else if (!c.activation.empty()) {
      b.node(c.activation, {"c"}, {"y"});
    }
    const ir::Graph g = b.done({"y", "h"});
    const TensorMap in{{"x", at::randn({c.batch, c.in, c.side, c.side}) * 2}};
    const std::string what = std::to_string(c.in) + " -> " + std::to_string(c.out) + " at " +
                             std::to_string(c.side) + "x" + std::to_string(c.side) + " " + c.activation;
    const EngineStats s = expect_same(g, in, {"y", "h"});
    EXPECT_EQ(s.reference_nodes, 0) << what << " " << ops_of(s);
    if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) continue;
    int own = 0;
    for (const auto& st : profiled_steps(g, in)) own += st.kernel == "graft:winograd_output";
    EXPECT_EQ(own, 2) << what;
  }
}

TEST(NativeTest, WinogradWeightsAndTransformsMatchTheDefinition) {
  // One 4x4 input patch through winograd_input, one kernel through winograd_weights, their
  // products summed over channels, then winograd_output: the 2x2 outputs of the convolution
  // with zero padding, computed directly in double precision.
  if (!onednn::fast_winograd()) GTEST_SKIP() << "graft's Winograd kernels need AVX-512";
  const int64_t h = 3, w = 3, ic = 17, oc = 19;  // 2x2 tiles, the last row and column half outside
  std::vector<float> x(h * w * ic), k(oc * ic * 9), bias(oc);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.7 * static_cast<double>(i));
  for (size_t i = 0; i < k.size(); ++i) k[i] = std::cos(0.3 * static_cast<double>(i));
  for (int64_t o = 0; o < oc; ++o) bias[o] = 0.1f * static_cast<float>(o) - 1;
  const int64_t tiles = onednn::winograd_tiles(1, h, w);
  ASSERT_EQ(tiles, 4);
  std::vector<float> u(16 * ic * oc), v(16 * tiles * ic), m(16 * tiles * oc, 0.f), y(h * w * oc, -7.f);
  onednn::winograd_weights(k.data(), oc, ic, u.data());
  onednn::winograd_input(x.data(), 1, h, w, ic, v.data());
  for (int64_t p = 0; p < 16; ++p) {
    for (int64_t t = 0; t < tiles; ++t) {
      for (int64_t o = 0; o < oc; ++o) {
        double sum = 0;
        for (int64_t i = 0; i < ic; ++i) sum += double{v[(p * tiles + t) * ic + i]} * u[(p * ic + i) * oc + o];
        m[(p * tiles + t) * oc + o] = static_cast<float>(sum);
      }
    }
  }
  onednn::Epilogue e;
  e.kind = onednn::Epilogue::kRelu;
  e.slope = 0.1f;
  e.lo = -1e9f;
  e.hi = 2.5f;
  onednn::winograd_output(m.data(), 1, h, w, oc, bias.data(), e, y.data());
  for (int64_t r = 0; r < h; ++r) {
    for (int64_t c = 0; c < w; ++c) {
      for (int64_t o = 0; o < oc; ++o) {
        double want = bias[o];
        for (int64_t i = 0; i < ic; ++i) {
          for (int64_t kr = 0; kr < 3; ++kr) {
            for (int64_t kc = 0; kc < 3; ++kc) {
              const int64_t xr = r + kr - 1, xc = c + kc - 1;
              if (xr < 0 || xr >= h || xc < 0 || xc >= w) continue;
              want += double{x[(xr * w + xc) * ic + i]} * k[((o * ic + i) * 3 + kr) * 3 + kc];
            }
          }
        }
        want = std::min(want > 0 ? want : 0.1 * want, 2.5);
        EXPECT_NEAR(y[(r * w + c) * oc + o], want, 1e-4 * (1 + std::fabs(want))) << r << "," << c << " channel " << o;
      }
    }
  }
}

// The epilogue of graft's own kernels (native.h), in double precision.
double epilogue_reference(double v, const onednn::Epilogue& e) {
  switch (e.kind) {
    case onednn::Epilogue::kRelu: v = v > 0 ? v : e.slope * v; break;
    case onednn::Epilogue::kHardSwish: v = v * std::min(std::max(v + 3, 0.0), 6.0) / 6; break;
    case onednn::Epilogue::kSilu: v = v / (1 + std::exp(-v)); break;
    case onednn::Epilogue::kLinear: break;
  }
  return std::min(std::max(v, double{e.lo}), double{e.hi});
}

// The kernels and ops of a compiled program's steps.
struct StepKinds {
  std::vector<std::string> kernels, ops;
};
StepKinds step_kinds(const ir::Graph& g, const TensorMap& in) {
  StepKinds k;
  for (const auto& st : profiled_steps(g, in)) {
    k.kernels.push_back(st.kernel);
    k.ops.push_back(st.op);
  }
  return k;
}

// `g` on the fast path matches the reference executor with no reference node; with AVX-512,
// graft's kernel `kernel` runs exactly once when `own` (and the program's steps are then
// `ops`, nothing between them) and never otherwise. `what` names the case.
void expect_own_kernel(const ir::Graph& g, const TensorMap& inputs, const std::string& what,
                       const std::string& kernel, bool own, const std::vector<std::string>& ops) {
  const EngineStats s = expect_same(g, inputs, {"y"});
  EXPECT_EQ(s.reference_nodes, 0) << what << " " << ops_of(s);
  if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) return;
  const StepKinds k = step_kinds(g, inputs);
  EXPECT_EQ(std::count(k.kernels.begin(), k.kernels.end(), kernel), own ? 1 : 0)
      << what << ": " << ::testing::PrintToString(k.kernels);
  if (own) {
    EXPECT_EQ(k.ops, ops) << what << ": " << ::testing::PrintToString(k.kernels);
  }
}

TEST(NativeTest, DepthwiseMatchesTheDefinitionOnEveryEdge) {
  // graft's depthwise kernel against the convolution computed directly in double precision:
  // 3x3, 5x5 and 7x7 filters at strides 1 and 2; odd sides and unequal pads (the right and
  // bottom pads implied by the output size); channel counts with a masked tail (23, 40) and
  // over a vector (72); rows wider than one 8-pixel block and narrower than the filter; every
  // epilogue; with and without bias; two samples.
  if (!onednn::fast_depthwise()) GTEST_SKIP() << "graft's depthwise kernel needs AVX-512";
  struct Case {
    int64_t batch, channels, h, w, kernel, stride, pad_top, pad_left;
    onednn::Epilogue::Kind kind;
    bool bias;
  };
  using E = onednn::Epilogue;
  for (const Case& c : {Case{1, 40, 13, 19, 5, 1, 2, 2, E::kRelu, true}, Case{2, 23, 9, 11, 3, 2, 1, 0, E::kLinear, false},
                        Case{1, 72, 17, 17, 7, 1, 3, 3, E::kSilu, true}, Case{1, 16, 28, 28, 5, 2, 1, 2, E::kHardSwish, true},
                        Case{1, 40, 4, 3, 5, 1, 2, 2, E::kRelu, false}, Case{1, 33, 15, 30, 7, 2, 3, 3, E::kLinear, true}}) {
    onednn::DepthwiseShape s;
    s.batch = c.batch;
    s.h = c.h;
    s.w = c.w;
    s.channels = c.channels;
    s.kernel = c.kernel;
    s.stride = c.stride;
    s.pad_top = c.pad_top;
    s.pad_left = c.pad_left;
    s.out_h = (c.h + 2 * c.pad_top - c.kernel) / c.stride + 1;
    s.out_w = (c.w + 2 * c.pad_left - c.kernel) / c.stride + 1;
    ASSERT_TRUE(onednn::depthwise_kernel_supported(c.kernel, c.stride));
    const int64_t k = c.kernel, ch = c.channels;
    std::vector<float> x(c.batch * c.h * c.w * ch), w(ch * k * k), bias(ch), packed(k * k * ch);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 2 * std::sin(0.37 * static_cast<double>(i));
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.23 * static_cast<double>(i));
    for (int64_t i = 0; i < ch; ++i) bias[i] = 0.05f * static_cast<float>(i) - 0.5f;
    onednn::depthwise_weights(w.data(), ch, k, packed.data());
    E e;
    e.kind = c.kind;
    if (c.kind == E::kRelu) {
      e.slope = 0.1f;
      e.hi = 3.f;  // ReLU6-like clamp on top of leaky ReLU
    }
    std::vector<float> y(c.batch * s.out_h * s.out_w * ch, -99.f);
    onednn::depthwise(x.data(), s, packed.data(), c.bias ? bias.data() : nullptr, e, y.data());
    const std::string what = std::to_string(ch) + " channels " + std::to_string(c.h) + "x" + std::to_string(c.w) +
                             " k" + std::to_string(k) + " s" + std::to_string(c.stride);
    for (int64_t n = 0; n < c.batch; ++n) {
      for (int64_t oy = 0; oy < s.out_h; ++oy) {
        for (int64_t ox = 0; ox < s.out_w; ++ox) {
          for (int64_t i = 0; i < ch; ++i) {
            double v = c.bias ? bias[i] : 0.0;
            for (int64_t ky = 0; ky < k; ++ky) {
              for (int64_t kx = 0; kx < k; ++kx) {
                const int64_t iy = oy * c.stride - c.pad_top + ky, ix = ox * c.stride - c.pad_left + kx;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                v += double{x[((n * c.h + iy) * c.w + ix) * ch + i]} * w[(i * k + ky) * k + kx];
              }
            }
            v = epilogue_reference(v, e);
            const float got = y[((n * s.out_h + oy) * s.out_w + ox) * ch + i];
            ASSERT_NEAR(got, v, 1e-4 * (1 + std::fabs(v))) << what << " at " << n << "," << oy << "," << ox << " channel " << i;
          }
        }
      }
    }
  }
}

TEST(OneDnnTest, GraftsOwnDepthwiseFor5x5And7x7AtBatchOneOnLargeMaps) {
  // MobileNetV3 / MNASNet / ConvNeXt blocks: a pointwise expansion writing nhwc, then a 5x5 or
  // 7x7 depthwise convolution with its activation, then a projection. At batch 1 on maps of
  // 28x28 and more, graft's kernel runs it (one step, no reorder); a 3x3 one, a 14x14 map or a
  // second sample keep oneDNN's.
  struct Case {
    int64_t batch, side, kernel, stride;
    std::string activation;
    bool own;
  };
  at::manual_seed(37);
  for (const Case& c : {Case{1, 28, 5, 1, "HardSwish", true}, Case{1, 29, 5, 2, "Relu", true},
                        Case{1, 32, 7, 1, "", true}, Case{1, 30, 5, 1, "Silu", true}, Case{1, 28, 5, 1, "Clip", true},
                        Case{1, 28, 3, 1, "Relu", false}, Case{1, 14, 5, 1, "Relu", false},
                        Case{2, 28, 5, 1, "Relu", false}}) {
    const int64_t in = 24, mid = 72, pad = c.kernel / 2;
    Builder b(13);
    b.input("x", {-1, in, c.side, c.side});
    b.node("Conv", {"x", b.init("w1", at::randn({mid, in, 1, 1}) * 0.2), b.init("b1", at::randn({mid}))}, {"e"});
    b.node("Relu", {"e"}, {"r"});
    auto& dw = b.node("Conv", {"r", b.init("w2", at::randn({mid, 1, c.kernel, c.kernel}) * 0.2), b.init("b2", at::randn({mid}))},
                      {c.activation.empty() ? "d" : "c"});
    dw.attributes.set(ir::Attribute::of_int("group", mid));
    dw.attributes.set(ir::Attribute::of_ints("pads", {pad, pad, pad, pad}));
    dw.attributes.set(ir::Attribute::of_ints("strides", {c.stride, c.stride}));
    if (c.activation == "Clip") {
      b.node("Clip", {"c", b.init("lo", at::scalar_tensor(0.f)), b.init("hi", at::scalar_tensor(6.f))}, {"d"});
    } else if (c.activation == "Silu") {
      b.node("Sigmoid", {"c"}, {"sg"});
      b.node("Mul", {"c", "sg"}, {"d"});
    } else if (!c.activation.empty()) {
      b.node(c.activation, {"c"}, {"d"});
    }
    b.node("Conv", {"d", b.init("w3", at::randn({in, mid, 1, 1}) * 0.2)}, {"y"});
    const ir::Graph g = b.done({"y"});
    const TensorMap inputs{{"x", at::randn({c.batch, in, c.side, c.side})}};
    const std::string what = std::to_string(c.kernel) + "x" + std::to_string(c.kernel) + " stride " +
                             std::to_string(c.stride) + " at " + std::to_string(c.side) + " batch " +
                             std::to_string(c.batch) + " " + c.activation;
    // the input's reorder (NCHW -> nhwc), expansion, depthwise, projection: no reorder or
    // activation step between them
    const std::string dw_op = c.activation.empty() ? "Conv" : "graft.FusedConv";
    expect_own_kernel(g, inputs, what, "graft:depthwise", c.own, {"Reorder", "graft.FusedConv", dw_op, "Conv"});
  }
}

TEST(NativeTest, Grouped16MatchesTheDefinition) {
  // graft's kernel for 16-channel groups against the grouped convolution computed directly in
  // double precision: strides 1 and 2, odd sides, a row wider than one 8-pixel block and one
  // narrower than the filter, pads on every side, each group reading only its own channels.
  if (!onednn::fast_depthwise()) GTEST_SKIP() << "graft's grouped kernel needs AVX-512";
  struct Case {
    int64_t batch, groups, h, w, stride;
    onednn::Epilogue::Kind kind;
    bool bias;
  };
  using E = onednn::Epilogue;
  for (const Case& c : {Case{2, 2, 13, 19, 2, E::kRelu, true}, Case{1, 3, 9, 11, 1, E::kLinear, false},
                        Case{1, 2, 2, 2, 1, E::kSilu, true}, Case{1, 1, 17, 5, 2, E::kHardSwish, true}}) {
    const int64_t ch = 16 * c.groups, k = 3;
    onednn::DepthwiseShape s;
    s.batch = c.batch;
    s.h = c.h;
    s.w = c.w;
    s.channels = ch;
    s.kernel = k;
    s.stride = c.stride;
    s.pad_top = 1;
    s.pad_left = 1;
    s.out_h = (c.h + 2 - k) / c.stride + 1;
    s.out_w = (c.w + 2 - k) / c.stride + 1;
    ASSERT_TRUE(onednn::grouped16_kernel_supported(k, c.stride));
    std::vector<float> x(c.batch * c.h * c.w * ch), w(ch * 16 * k * k), bias(ch), packed(c.groups * k * k * 256);
    for (size_t i = 0; i < x.size(); ++i) x[i] = 2 * std::sin(0.37 * static_cast<double>(i));
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.3 * std::cos(0.23 * static_cast<double>(i));
    for (int64_t i = 0; i < ch; ++i) bias[i] = 0.05f * static_cast<float>(i) - 0.5f;
    onednn::grouped16_weights(w.data(), c.groups, k, packed.data());
    E e;
    e.kind = c.kind;
    if (c.kind == E::kRelu) e.slope = 0.1f;
    std::vector<float> y(c.batch * s.out_h * s.out_w * ch, -99.f);
    onednn::grouped16(x.data(), s, packed.data(), c.bias ? bias.data() : nullptr, e, y.data());
    const std::string what = std::to_string(c.groups) + " groups " + std::to_string(c.h) + "x" + std::to_string(c.w) +
                             " s" + std::to_string(c.stride);
    for (int64_t n = 0; n < c.batch; ++n) {
      for (int64_t oy = 0; oy < s.out_h; ++oy) {
        for (int64_t ox = 0; ox < s.out_w; ++ox) {
          for (int64_t o = 0; o < ch; ++o) {
            const int64_t g = o / 16;
            double v = c.bias ? bias[o] : 0.0;
            for (int64_t i = 0; i < 16; ++i) {
              for (int64_t ky = 0; ky < k; ++ky) {
                for (int64_t kx = 0; kx < k; ++kx) {
                  const int64_t iy = oy * c.stride - 1 + ky, ix = ox * c.stride - 1 + kx;
                  if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                  v += double{x[((n * c.h + iy) * c.w + ix) * ch + 16 * g + i]} * w[((o * 16 + i) * k + ky) * k + kx];
                }
              }
            }
            v = epilogue_reference(v, e);
            const float got = y[((n * s.out_h + oy) * s.out_w + ox) * ch + o];
            ASSERT_NEAR(got, v, 1e-4 * (1 + std::fabs(v))) << what << " at " << n << "," << oy << "," << ox << " channel " << o;
          }
        }
      }
    }
  }
}

TEST(OneDnnTest, GraftsOwnGroupedKernelForRegNetsStrideTwoOnLargeInputs) {
  // RegNet's first block: 1x1 expansion, a 3x3 stride-2 convolution of 16-channel groups with
  // ReLU, a 1x1 projection. With at least 2 x 112 x 112 input pixels, or 512 channels and 1 MiB
  // a sample (ResNeXt's 512 channels at 28x28), graft's kernel runs the grouped convolution
  // (one step, nhwc, no reorder); at batch 1 on smaller samples, at stride 1, or with groups
  // of 8 channels oneDNN's does.
  struct Case {
    int64_t batch, side, stride, group_width, mid;
    bool own;
  };
  at::manual_seed(41);
  for (const Case& c : {Case{2, 112, 2, 16, 48, true}, Case{1, 112, 2, 16, 48, false},
                        Case{2, 112, 1, 16, 48, false}, Case{2, 112, 2, 8, 48, false},
                        Case{8, 57, 2, 16, 48, true}, Case{1, 28, 2, 16, 512, true},
                        Case{1, 28, 2, 16, 320, false}}) {
    const int64_t in = 16, mid = c.mid, groups = mid / c.group_width;
    Builder b(13);
    b.input("x", {-1, in, c.side, c.side});
    b.node("Conv", {"x", b.init("w1", at::randn({mid, in, 1, 1}) * 0.2), b.init("b1", at::randn({mid}))}, {"e"});
    b.node("Relu", {"e"}, {"r"});
    auto& gc = b.node("Conv", {"r", b.init("w2", at::randn({mid, c.group_width, 3, 3}) * 0.2), b.init("b2", at::randn({mid}))},
                      {"c"});
    gc.attributes.set(ir::Attribute::of_int("group", groups));
    gc.attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    gc.attributes.set(ir::Attribute::of_ints("strides", {c.stride, c.stride}));
    b.node("Relu", {"c"}, {"d"});
    b.node("Conv", {"d", b.init("w3", at::randn({in, mid, 1, 1}) * 0.2)}, {"y"});
    const ir::Graph g = b.done({"y"});
    const TensorMap inputs{{"x", at::randn({c.batch, in, c.side, c.side})}};
    const std::string what = "batch " + std::to_string(c.batch) + " at " + std::to_string(c.side) + " stride " +
                             std::to_string(c.stride) + " " + std::to_string(mid) + " channels in groups of " +
                             std::to_string(c.group_width);
    expect_own_kernel(g, inputs, what, "graft:grouped16", c.own,
                      {"Reorder", "graft.FusedConv", "graft.FusedConv", "Conv"});
  }
}

TEST(OneDnnTest, RunsOnAnotherThreadThanTheOneThatCompiled) {
  // A server compiles on one thread and runs on its workers: every primitive's scratchpad
  // must be the program's, not the compiling thread's (Winograd convolutions crashed).
  at::manual_seed(14);
  const ir::Graph g = winograd_graph();
  const TensorMap in{{"x", at::randn({2, 64, 14, 14})}};
  Session reference(g, reference_options()), fast(g, fast_options());
  const TensorMap want = reference.run(in);
  fast.run(in);
  for (int i = 0; i < 2; ++i) {
    TensorMap got;
    std::thread worker([&] { got = fast.run(in); });
    worker.join();
    EXPECT_LE(relative_difference(want, got), 1e-4);
  }
}

TEST(OneDnnTest, ProfilesNameEveryStep) {
  at::manual_seed(15);
  Builder b;
  b.input("x", {1, 4, 8, 8});
  b.node("Conv", {"x", b.init("w", at::randn({8, 4, 3, 3}))}, {"c"});
  b.node("Erf", {"c"}, {"y"});
  const ir::Graph g = b.done({"y"});
  const TensorMap in{{"x", at::randn({1, 4, 8, 8})}};
  std::vector<StepTime> steps;
  RunOptions ro;
  ro.profile = &steps;
  Session fast(g, fast_options());
  fast.run(in, {}, ro);
  EXPECT_TRUE(steps.empty());  // the compiling run: its times are compile times
  fast.run(in, {}, ro);
  // The input reordered for the convolution, the convolution, its output reordered back to
  // plain for Erf's ATen kernel, Erf.
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].op, "Reorder");
  EXPECT_EQ(steps[0].node, "x");
  EXPECT_EQ(steps[1].op, "Conv");
  EXPECT_EQ(steps[1].node, g.nodes[0].name);
  EXPECT_NE(steps[1].kernel, "aten");
  EXPECT_EQ(steps[2].op, "Reorder");
  EXPECT_EQ(steps[3].op, "Erf");
  EXPECT_EQ(steps[3].kernel, "aten");
  for (const auto& st : steps) EXPECT_GE(st.ms, 0.0);
  steps.clear();
  Session reference(g, reference_options());
  reference.run(in, {}, ro);
  ASSERT_EQ(steps.size(), 2u);  // node by node
  EXPECT_EQ(steps[0].op, "Conv");
  EXPECT_EQ(steps[1].kernel, "aten");
}

// No node on ATen and no step on one of oneDNN's reference ("ref:") kernels.
void expect_all_fast(const EngineStats& s, const std::string& what) {
  EXPECT_EQ(s.reference_nodes, 0) << what << ": ATen runs " << ops_of(s);
  std::string slow;
  for (const auto& [op, n] : s.reference_kernel_ops) slow += op + "x" + std::to_string(n) + " ";
  EXPECT_TRUE(s.reference_kernel_ops.empty()) << what << ": oneDNN reference kernels for " << slow;
}

// x * Sigmoid(x), x * HardSigmoid(x) (as PyTorch writes HardSwish before opset 14) and GELU in
// its Erf and Tanh forms, after convolutions (fused as post-ops), alone at rank 2 and 4, and a
// lone HardSigmoid (two JIT steps).
TEST(OneDnnTest, SiluHardSwishAndGeluRunAsOneDnnActivations) {
  at::manual_seed(21);
  Builder b;
  b.input("x", {2, 16, 9, 9});
  b.input("v", {3, 40});
  const auto scalar = [&](const std::string& name, float v) { return b.init(name, at::scalar_tensor(v)); };
  b.node("Conv", {"x", b.init("w1", at::randn({32, 16, 3, 3}) * 0.2)}, {"c1"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Sigmoid", {"c1"}, {"s1"});
  b.node("Mul", {"c1", "s1"}, {"silu"});
  b.node("Conv", {"silu", b.init("w2", at::randn({32, 32, 1, 1}) * 0.2)}, {"c2"});
  b.node("HardSigmoid", {"c2"}, {"h2"}).attributes = [] {
    ir::Attributes a;
    a.set(ir::Attribute::of_float("alpha", 1.f / 6.f));
    a.set(ir::Attribute::of_float("beta", 0.5f));
    return a;
  }();
  b.node("Mul", {"h2", "c2"}, {"hswish"});
  // GELU, Erf form, as PyTorch exports it: (x * (1 + erf(x / sqrt 2))) * 0.5.
  b.node("Div", {"hswish", scalar("sqrt2", std::sqrt(2.f))}, {"g1"});
  b.node("Erf", {"g1"}, {"g2"});
  b.node("Add", {"g2", scalar("one", 1.f)}, {"g3"});
  b.node("Mul", {"hswish", "g3"}, {"g4"});
  b.node("Mul", {"g4", scalar("half", 0.5f)}, {"gelu"});
  b.node("HardSigmoid", {"gelu"}, {"hs"});
  // GELU, Tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))) on a 2-D input.
  b.node("Pow", {"v", scalar("three", 3.f)}, {"t1"});
  b.node("Mul", {"t1", scalar("k", 0.044715f)}, {"t2"});
  b.node("Add", {"v", "t2"}, {"t3"});
  b.node("Mul", {"t3", scalar("c", std::sqrt(2.f / static_cast<float>(M_PI)))}, {"t4"});
  b.node("Tanh", {"t4"}, {"t5"});
  b.node("Add", {"t5", scalar("one2", 1.f)}, {"t6"});
  b.node("Mul", {"v", scalar("half2", 0.5f)}, {"t7"});
  b.node("Mul", {"t7", "t6"}, {"gelu_tanh"});
  b.node("Sigmoid", {"gelu_tanh"}, {"s2"});
  b.node("Mul", {"s2", "gelu_tanh"}, {"silu2"});
  // A classifier's hidden layer: the Relu after the Gemm is the inner product's post-op.
  b.node("Gemm", {"silu2", b.init("gw", at::randn({40, 20}) * 0.2), b.init("gb", at::randn({20}))}, {"fc"});
  b.node("Relu", {"fc"}, {"fcr"});
  const ir::Graph g = b.done({"hs", "fcr"});
  const TensorMap in{{"x", at::randn({2, 16, 9, 9})}, {"v", at::randn({3, 40}) * 2}};
  expect_all_fast(expect_same(g, in), "activations");
  Session fast(g, fast_options());
  fast.run(in);
  // Every pattern became one node: the convolutions with their activation, then the Erf GELU
  // and the HardSigmoid; the Tanh GELU and the SiLU after it; the Gemm, its Relu absorbed.
  EXPECT_EQ(fast.engine_stats()->onednn_nodes, 8);
  std::vector<StepTime> steps;
  RunOptions ro;
  ro.profile = &steps;
  fast.run(in, {}, ro);
  int gemm_steps = 0, relu_steps = 0;
  for (const auto& st : steps) {
    gemm_steps += st.op == "Gemm";
    relu_steps += st.op == "Relu";
  }
  EXPECT_EQ(gemm_steps, 1);
  EXPECT_EQ(relu_steps, 0);
}

// ConvNeXt's block as torchvision writes it: depthwise 7x7 convolution, a permute to channels
// last, LayerNorm (decomposed at opset 13, one LayerNormalization node at 17), Linear, GELU,
// Linear, the permute back, the layer scale and the residual. The permutes are layouts, the
// linears inner products with GELU as a post-op.
TEST(OneDnnTest, ConvNeXtBlockWithoutATenOrReorders) {
  for (const int64_t opset : {13, 17}) {
    at::manual_seed(22);
    Builder b(opset);
    b.input("x", {2, 32, 7, 7});
    b.node("Conv", {"x", b.init("dw", at::randn({32, 1, 7, 7}) * 0.2), b.init("dwb", at::randn({32}))}, {"d"})
        .attributes = [] {
      ir::Attributes a;
      a.set(ir::Attribute::of_int("group", 32));
      a.set(ir::Attribute::of_ints("pads", {3, 3, 3, 3}));
      return a;
    }();
    b.node("Transpose", {"d"}, {"t"}).attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
    const std::string gamma = b.init("gamma", at::rand({32}) + 0.5), beta = b.init("beta", at::randn({32}));
    if (opset == 13) {
      b.node("ReduceMean", {"t"}, {"m"}).attributes.set(ir::Attribute::of_ints("axes", {-1}));
      b.node("Sub", {"t", "m"}, {"dev"});
      b.node("Pow", {"dev", b.init("two", at::scalar_tensor(2.f))}, {"sq"});
      b.node("ReduceMean", {"sq"}, {"var"}).attributes.set(ir::Attribute::of_ints("axes", {-1}));
      b.node("Add", {"var", b.init("eps", at::scalar_tensor(1e-6f))}, {"ve"});
      b.node("Sqrt", {"ve"}, {"sd"});
      b.node("Div", {"dev", "sd"}, {"nrm"});
      b.node("Mul", {"nrm", gamma}, {"scaled"});
      b.node("Add", {"scaled", beta}, {"ln"});
    } else {
      b.node("LayerNormalization", {"t", gamma, beta}, {"ln"})
          .attributes.set(ir::Attribute::of_float("epsilon", 1e-6f));
    }
    b.node("MatMul", {"ln", b.init("w1", at::randn({32, 128}) * 0.2)}, {"l1"});
    b.node("Add", {b.init("b1", at::randn({128})), "l1"}, {"l1b"});
    b.node("Div", {"l1b", b.init("sqrt2", at::scalar_tensor(std::sqrt(2.f)))}, {"e1"});
    b.node("Erf", {"e1"}, {"e2"});
    b.node("Add", {"e2", b.init("one", at::scalar_tensor(1.f))}, {"e3"});
    b.node("Mul", {"l1b", "e3"}, {"e4"});
    b.node("Mul", {"e4", b.init("half", at::scalar_tensor(0.5f))}, {"gelu"});
    b.node("MatMul", {"gelu", b.init("w2", at::randn({128, 32}) * 0.1)}, {"l2"});
    b.node("Add", {b.init("b2", at::randn({32})), "l2"}, {"l2b"});
    b.node("Transpose", {"l2b"}, {"back"}).attributes.set(ir::Attribute::of_ints("perm", {0, 3, 1, 2}));
    b.node("Mul", {b.init("layer_scale", at::rand({32, 1, 1})), "back"}, {"ls"});
    b.node("Add", {"ls", "x"}, {"y"});
    const ir::Graph g = b.done({"y"});
    const EngineStats s = expect_same(g, {{"x", at::randn({2, 32, 7, 7})}});
    expect_all_fast(s, "opset " + std::to_string(opset));
    // Only the graph input's reorder into the convolution's layout.
    EXPECT_LE(s.reorders, 2) << "opset " << opset;
  }
}

// A channels-first LayerNorm (means over axis 1 of NCHW, scale and shift of shape [C, 1, 1], as
// ConvNeXt's downsampling layers are written outside torchvision) between two convolutions:
// recognised, run as LayerNormalization between two free transposes.
TEST(OneDnnTest, ChannelsFirstLayerNormBetweenConvolutions) {
  at::manual_seed(24);
  Builder b;
  b.input("x", {2, 16, 8, 8});
  b.node("Conv", {"x", b.init("w0", at::randn({32, 16, 1, 1}) * 0.3)}, {"c"});
  b.node("ReduceMean", {"c"}, {"m"}).attributes.set(ir::Attribute::of_ints("axes", {1}));
  b.node("Sub", {"c", "m"}, {"dev"});
  b.node("Pow", {"dev", b.init("two", at::scalar_tensor(2.f))}, {"sq"});
  b.node("ReduceMean", {"sq"}, {"var"}).attributes.set(ir::Attribute::of_ints("axes", {1}));
  b.node("Add", {"var", b.init("eps", at::scalar_tensor(1e-6f))}, {"ve"});
  b.node("Sqrt", {"ve"}, {"sd"});
  b.node("Div", {"dev", "sd"}, {"nrm"});
  b.node("Mul", {b.init("gamma", at::rand({32, 1, 1}) + 0.5), "nrm"}, {"scaled"});
  b.node("Add", {"scaled", b.init("beta", at::randn({32, 1, 1}))}, {"ln"});
  b.node("Conv", {"ln", b.init("w1", at::randn({64, 32, 2, 2}) * 0.2)}, {"y"})
      .attributes.set(ir::Attribute::of_ints("strides", {2, 2}));
  const ir::Graph g = b.done({"y"});
  expect_all_fast(expect_same(g, {{"x", at::randn({2, 16, 8, 8})}}), "channels-first LayerNorm");
  ir::Graph o = g;
  passes::optimize(o);
  int ln = 0, reduce = 0;
  for (const auto& n : o.nodes) {
    ln += n.op_type == "LayerNormalization";
    reduce += n.op_type == "ReduceMean";
  }
  EXPECT_EQ(ln, 1);
  EXPECT_EQ(reduce, 0);
}

// DenseNet's pre-activation: BatchNormalization after a Concat (no convolution to fold it
// into) with its Relu fused; ShuffleNet's channel split (Slice) and shuffle (Reshape, Transpose,
// Reshape); squeeze-excitation after a grouped convolution (its Mul a broadcast binary op in the
// convolution's layout).
TEST(OneDnnTest, DenseNetShuffleNetAndSqueezeExcitationPieces) {
  at::manual_seed(23);
  Builder b;
  b.input("x", {2, 24, 10, 10});
  b.node("Conv", {"x", b.init("w0", at::randn({24, 24, 3, 3}) * 0.2)}, {"c0"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Concat", {"x", "c0"}, {"cat"}).attributes.set(ir::Attribute::of_int("axis", 1));
  b.node("BatchNormalization", {"cat", b.init("g", at::rand({48}) + 0.5), b.init("bb", at::randn({48})),
                                b.init("m", at::randn({48})), b.init("v", at::rand({48}) + 0.5)},
         {"bn"});
  b.node("Relu", {"bn"}, {"r"});
  // Channel split and shuffle.
  b.node("Slice", {"r", b.init("s0", at::tensor({0}, at::kLong)), b.init("e0", at::tensor({24}, at::kLong)),
                   b.init("a0", at::tensor({1}, at::kLong))},
         {"left"});
  b.node("Slice", {"r", b.init("s1", at::tensor({24}, at::kLong)), b.init("e1", at::tensor({48}, at::kLong)),
                   b.init("a1", at::tensor({1}, at::kLong))},
         {"right"});
  b.node("Conv", {"right", b.init("w1", at::randn({24, 24, 1, 1}) * 0.2)}, {"c1"});
  b.node("Concat", {"left", "c1"}, {"joined"}).attributes.set(ir::Attribute::of_int("axis", 1));
  b.node("Reshape", {"joined", b.init("five", at::tensor({2, 2, 24, 10, 10}, at::kLong))}, {"r5"});
  b.node("Transpose", {"r5"}, {"t5"}).attributes.set(ir::Attribute::of_ints("perm", {0, 2, 1, 3, 4}));
  b.node("Reshape", {"t5", b.init("four", at::tensor({2, -1, 10, 10}, at::kLong))}, {"shuffled"});
  // Grouped convolution and squeeze-excitation.
  b.node("Conv", {"shuffled", b.init("wg", at::randn({48, 12, 3, 3}) * 0.2)}, {"cg"}).attributes = [] {
    ir::Attributes a;
    a.set(ir::Attribute::of_int("group", 4));
    a.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    return a;
  }();
  b.node("GlobalAveragePool", {"cg"}, {"pool"});
  b.node("Conv", {"pool", b.init("wr", at::randn({12, 48, 1, 1}) * 0.2)}, {"red"});
  b.node("Relu", {"red"}, {"redr"});
  b.node("Conv", {"redr", b.init("we", at::randn({48, 12, 1, 1}) * 0.2)}, {"exp"});
  b.node("Sigmoid", {"exp"}, {"gate"});
  b.node("Mul", {"cg", "gate"}, {"y"});
  const ir::Graph g = b.done({"y", "shuffled"});
  expect_all_fast(expect_same(g, {{"x", at::randn({2, 24, 10, 10})}}), "pieces");
}

// EfficientNetV2's fused MBConv blocks: a 3x3 convolution with SiLU, then a 1x1 projection
// summing the block's input. oneDNN's Winograd kernels take no SiLU post-op: the 3x3 runs
// Winograd and then SiLU as an in-place step; the projection reads the Winograd output in its
// blocked layout (no reorder of it), and where its sum feeds the next Winograd convolution it
// writes that layout too.
TEST(OneDnnTest, WinogradThenTheActivationItCannotFuse) {
  at::manual_seed(26);
  Builder b;
  b.input("x", {-1, 48, 24, 24});
  std::string in = "x";
  for (const std::string id : {"1", "2"}) {
    b.node("Conv", {in, b.init("w" + id, at::randn({192, 48, 3, 3}) * 0.05), b.init("b" + id, at::randn({192}) * 0.1)},
           {"c" + id})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    b.node("Sigmoid", {"c" + id}, {"g" + id});
    b.node("Mul", {"c" + id, "g" + id}, {"s" + id});
    b.node("Conv", {"s" + id, b.init("p" + id, at::randn({48, 192, 1, 1}) * 0.05)}, {"q" + id});
    b.node("Add", {"q" + id, in}, {"a" + id});
    in = "a" + id;
  }
  const ir::Graph g = b.done({"a2"});
  for (const int64_t batch : {1, 2}) {
    const TensorMap x{{"x", at::randn({batch, 48, 24, 24})}};
    expect_all_fast(expect_same(g, x), "batch " + std::to_string(batch));
    if (dnnl::get_effective_cpu_isa() < dnnl::cpu_isa::avx512_core) continue;  // no Winograd kernels
    const std::vector<StepTime> steps = profiled_steps(g, x);
    int winograd = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      if (steps[i].kernel.find("wino") == std::string::npos) continue;
      ++winograd;
      ASSERT_LT(i + 1, steps.size());
      EXPECT_EQ(steps[i + 1].node, steps[i].node) << "the SiLU step after the Winograd one";
      EXPECT_EQ(steps[i + 1].kernel.find("wino"), std::string::npos);
    }
    EXPECT_EQ(winograd, 2);
    for (const auto& st : steps) {
      if (st.op == "Reorder") {
        EXPECT_NE(st.node, "s1") << "the projection reads the Winograd output as it is";
        EXPECT_NE(st.node, "s2") << "the projection reads the Winograd output as it is";
        EXPECT_NE(st.node, "a1") << "the first block's sum is written in the next Winograd's layout";
      }
    }
  }
}

TEST(NativeTest, SiluMatchesDoublePrecision) {
  // Every length up to 40 (the AVX-512 kernel's 16-float body and masked tail), one past a
  // 4 KiB chunk, and one large enough to run threaded; values from -100 to 100.
  for (const int64_t n : {int64_t{1}, int64_t{15}, int64_t{16}, int64_t{17}, int64_t{40}, int64_t{1025}, int64_t{100003}}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(-100.0 + 200.0 * static_cast<double>(i * 7919 % n) / static_cast<double>(n));
    std::vector<float> y = x;
    silu_in_place(y.data(), n);
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = x[i], want = v / (1.0 + std::exp(-v));
      worst = std::max(worst, std::abs(y[i] - want) / std::max(std::abs(want), 1.0));
    }
    EXPECT_LE(worst, 1e-6) << n << " values (fast kernel: " << fast_silu() << ")";
  }
  std::vector<float> special{std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(), 0.f, -0.f};
  silu_in_place(special.data(), static_cast<int64_t>(special.size()));
  EXPECT_TRUE(std::isnan(special[0]));
  EXPECT_EQ(special[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(special[2], 0.f);
  EXPECT_EQ(special[3], 0.f);
}

// SiLU after a convolution with a large output (EfficientNet's expansions and depthwise
// convolutions) runs as graft's own in-place step after it, not as oneDNN's post-op (twice as
// slow); after a small one (squeeze-excitation's 1x1 convolutions on 1x1 maps) it stays fused.
TEST(OneDnnTest, SiluAfterLargeConvolutionsIsAStepOfItsOwn) {
  at::manual_seed(27);
  Builder b;
  b.input("x", {-1, 16, 40, 40});
  auto silu = [&](const std::string& in, const std::string& out) {
    b.node("Sigmoid", {in}, {out + "_g"});
    b.node("Mul", {in, out + "_g"}, {out});
  };
  b.node("Conv", {"x", b.init("we", at::randn({96, 16, 1, 1}) * 0.3), b.init("be", at::randn({96}))}, {"e"});
  silu("e", "es");  // 96 x 40 x 40: large
  b.node("Conv", {"es", b.init("wd", at::randn({96, 1, 3, 3}) * 0.3)}, {"d"}).attributes = [] {
    ir::Attributes a;
    a.set(ir::Attribute::of_int("group", 96));
    a.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    a.set(ir::Attribute::of_ints("strides", {2, 2}));
    return a;
  }();
  silu("d", "ds");  // 96 x 20 x 20: large
  b.node("GlobalAveragePool", {"ds"}, {"p"});
  b.node("Conv", {"p", b.init("wr", at::randn({8, 96, 1, 1}) * 0.3), b.init("br", at::randn({8}))}, {"r"});
  silu("r", "rs");  // 8 x 1 x 1: small
  b.node("Conv", {"rs", b.init("wx", at::randn({96, 8, 1, 1}) * 0.3)}, {"g"});
  b.node("Sigmoid", {"g"}, {"gs"});
  b.node("Mul", {"ds", "gs"}, {"y"});
  const ir::Graph g = b.done({"y"});
  for (const int64_t batch : {1, 3}) {
    const TensorMap x{{"x", at::randn({batch, 16, 40, 40}) * 2}};
    expect_all_fast(expect_same(g, x), "batch " + std::to_string(batch));
    std::vector<std::string> after;
    for (const auto& st : profiled_steps(g, x)) {
      if (st.kernel == "graft:silu") after.push_back(st.node);
    }
    if (!fast_silu()) {
      EXPECT_TRUE(after.empty());
      continue;
    }
    ASSERT_EQ(after.size(), 2u) << "batch " << batch;
    EXPECT_EQ(after[0], g.nodes[0].name) << "the expansion's SiLU";
    EXPECT_EQ(after[1], g.nodes[3].name) << "the depthwise convolution's SiLU";
  }
}

// A dense block (DenseNet): layer k concatenates the block's input and every layer's output
// before it. The Concats share one buffer: each piece is copied into it once (the Concat steps
// are named by the piece they copy), the pre-activation BatchNormalizations read the channel
// prefixes in place with graft's own strided loop, and the full-width one (the transition's)
// stays a oneDNN step. Other readers of a prefix (a Conv, a Relu, the requested output) get
// the same values as the reference.
TEST(OneDnnTest, DenseBlockConcatsShareOneBuffer) {
  at::manual_seed(25);
  Builder b;
  b.input("x", {-1, 16, 12, 12});
  const auto bn = [&](const std::string& in, int64_t c, const std::string& out) {
    b.node("BatchNormalization", {in, b.init(out + "_g", at::rand({c}) + 0.5), b.init(out + "_b", at::randn({c})),
                                  b.init(out + "_m", at::randn({c})), b.init(out + "_v", at::rand({c}) + 0.5)},
           {out});
  };
  std::vector<std::string> pieces{"x"};
  int64_t channels = 16;
  for (int k = 1; k <= 4; ++k) {
    const std::string cat = "cat" + std::to_string(k), id = std::to_string(k);
    b.node("Concat", pieces, {cat}).attributes.set(ir::Attribute::of_int("axis", 1));
    bn(cat, channels, "bn" + id);
    b.node("Relu", {"bn" + id}, {"r" + id});
    if (k == 4) break;
    b.node("Conv", {"r" + id, b.init("wa" + id, at::randn({16, channels, 1, 1}) * 0.2)}, {"a" + id});
    b.node("Relu", {"a" + id}, {"ar" + id});
    b.node("Conv", {"ar" + id, b.init("wb" + id, at::randn({8, 16, 3, 3}) * 0.2)}, {"n" + id})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    pieces.push_back("n" + id);
    channels += 8;
  }
  b.node("Conv", {"r4", b.init("wt", at::randn({16, 40, 1, 1}) * 0.2)}, {"t"});
  b.node("Conv", {"cat3", b.init("ws", at::randn({16, 32, 1, 1}) * 0.2)}, {"side"});
  b.node("Relu", {"cat2"}, {"cat2r"});
  // A shorter Concat of the group compiled after the longest: a view too, no copy.
  b.node("Concat", {"x", "n1"}, {"late"}).attributes.set(ir::Attribute::of_int("axis", 1));
  b.node("Relu", {"late"}, {"later"});
  const ir::Graph g = b.done({"t", "side", "cat2r", "cat3", "later"});
  for (const int64_t batch : {1, 2}) {
    const TensorMap in{{"x", at::randn({batch, 16, 12, 12})}};
    expect_all_fast(expect_same(g, in), "batch " + std::to_string(batch));
    std::vector<std::string> copied;
    int strided = 0, normalisations = 0;
    for (const auto& st : profiled_steps(g, in)) {
      if (st.op == "Concat") copied.push_back(st.node);
      if (st.op == "BatchNormalization") {
        normalisations++;
        if (st.kernel == "graft:scale_shift_relu") {
          strided++;
          const std::string suffix = "+Relu";  // the step names the Relu it absorbed
          EXPECT_TRUE(st.node.size() > suffix.size() &&
                      st.node.compare(st.node.size() - suffix.size(), suffix.size(), suffix) == 0)
              << st.node;
        }
      }
    }
    EXPECT_EQ(copied, (std::vector<std::string>{"x", "n1", "n2", "n3"})) << "each piece copied once";
    EXPECT_EQ(normalisations, 4);
    EXPECT_EQ(strided, 3) << "the three prefixes narrower than the buffer";
  }
}

// The same block as Keras writes it, x = Concatenate([x, new]) layer by layer: the chain of
// Concats flattened into one list of pieces shares one buffer too.
TEST(OneDnnTest, ChainedConcatsShareOneBuffer) {
  at::manual_seed(27);
  Builder b;
  b.input("x", {-1, 16, 12, 12});
  std::string features = "x";
  int64_t channels = 16;
  for (int k = 1; k <= 3; ++k) {
    const std::string id = std::to_string(k);
    b.node("BatchNormalization",
           {features, b.init("g" + id, at::rand({channels}) + 0.5), b.init("bb" + id, at::randn({channels})),
            b.init("m" + id, at::randn({channels})), b.init("v" + id, at::rand({channels}) + 0.5)},
           {"bn" + id});
    b.node("Relu", {"bn" + id}, {"r" + id});
    b.node("Conv", {"r" + id, b.init("w" + id, at::randn({8, channels, 3, 3}) * 0.2)}, {"n" + id})
        .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
    b.node("Concat", {features, "n" + id}, {"cat" + id}).attributes.set(ir::Attribute::of_int("axis", 1));
    features = "cat" + id;
    channels += 8;
  }
  b.node("Conv", {"cat3", b.init("wt", at::randn({16, 40, 1, 1}) * 0.2)}, {"t"});
  const ir::Graph g = b.done({"t", "cat1"});
  for (const int64_t batch : {1, 2}) {
    const TensorMap in{{"x", at::randn({batch, 16, 12, 12})}};
    expect_all_fast(expect_same(g, in), "batch " + std::to_string(batch));
    std::vector<std::string> copied;
    int strided = 0;
    for (const auto& st : profiled_steps(g, in)) {
      if (st.op == "Concat") copied.push_back(st.node);
      strided += st.op == "BatchNormalization" && st.kernel == "graft:scale_shift_relu";
    }
    EXPECT_EQ(copied, (std::vector<std::string>{"x", "n1", "n2", "n3"})) << "each piece copied once";
    EXPECT_EQ(strided, 2) << "layers 2 and 3 read prefixes of the 40-channel buffer";
  }
}

// Squeeze-excitation's Mul over a large map folded into the projection after it: the weights
// scaled per sample (one small Mul step per sample instead of one over the whole map), with and
// without a residual sum after the projection, at batch 1 and 2; a Mul whose output another node
// also reads stays a binary op over the map.
TEST(OneDnnTest, SqueezeExcitationScalesTheProjectionWeights) {
  at::manual_seed(24);
  Builder b;
  b.input("x", {-1, 8, 64, 64});
  b.node("Conv", {"x", b.init("w0", at::randn({32, 8, 3, 3}) * 0.2), b.init("b0", at::randn({32}))}, {"c"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Relu", {"c"}, {"r"});
  b.node("GlobalAveragePool", {"r"}, {"pool"});
  b.node("Conv", {"pool", b.init("wr", at::randn({8, 32, 1, 1}) * 0.2), b.init("br", at::randn({8}))}, {"red"});
  b.node("Relu", {"red"}, {"redr"});
  b.node("Conv", {"redr", b.init("we", at::randn({32, 8, 1, 1}) * 0.2), b.init("be", at::randn({32}))}, {"exp"});
  b.node("Sigmoid", {"exp"}, {"gate"});
  b.node("Mul", {"r", "gate"}, {"scaled"});
  b.node("Conv", {"scaled", b.init("wp", at::randn({16, 32, 1, 1}) * 0.2), b.init("bp", at::randn({16}))}, {"p"});
  // A second excitation: its projection sums a residual; its Mul is also an output.
  b.node("Conv", {"x", b.init("w1", at::randn({16, 8, 1, 1}) * 0.2)}, {"res"});
  b.node("Mul", {"gate", "r"}, {"scaled2"});
  b.node("Conv", {"scaled2", b.init("wq", at::randn({16, 32, 1, 1}) * 0.2)}, {"q"});
  b.node("Add", {"q", "res"}, {"y"});
  const ir::Graph folded = b.done({"p", "y"});
  const ir::Graph kept = b.done({"p", "y", "scaled2"});
  for (const int64_t batch : {1, 2}) {
    const TensorMap in{{"x", at::randn({batch, 8, 64, 64})}};
    expect_all_fast(expect_same(folded, in), "batch " + std::to_string(batch));
    int64_t muls = 0;
    for (const auto& st : profiled_steps(folded, in)) muls += st.op == "Mul";
    EXPECT_EQ(muls, 2 * batch) << "a weight-scaling step per sample and excitation";
    expect_all_fast(expect_same(kept, in), "kept, batch " + std::to_string(batch));
    muls = 0;
    for (const auto& st : profiled_steps(kept, in)) muls += st.op == "Mul";
    EXPECT_EQ(muls, batch + 1) << "the requested Mul over the whole map";
  }
}

TEST(OneDnnTest, ZooModelsMatchTheReference) {
  at::manual_seed(9);
  zoo::MobileNetV1Options mo;
  mo.alpha = 0.25;
  mo.input = 64;
  mo.classes = 10;
  ir::Graph mobilenet = zoo::mobilenet_v1(mo);
  zoo::InceptionResNetV2Options io;
  io.input = 75;
  io.width = 0.25;
  io.repeats = {1, 1, 1};
  io.classes = 10;
  ir::Graph irv2 = zoo::inception_resnet_v2(io);
  for (ir::Graph* g : {&mobilenet, &irv2}) {
    const int64_t size = g == &mobilenet ? 64 : 75;
    at::Tensor x = at::rand({3, 3, size, size});
    // BatchNorm statistics from 32 images, as a trained model's come from many: from these 3,
    // the last blocks (1x1 spatial) would get a variance of 3 values per channel, and scales
    // so large that rounding differences of 1e-6 grow past 1e-4 (any two correct kernels).
    testing::calibrate_batch_norm(*g, at::rand({32, 3, size, size}));
    // Logits before the softmax (a random model's softmax is nearly flat).
    const std::string logits = g->nodes[g->nodes.size() - 1].inputs[0];
    const EngineStats s = expect_same(*g, {{g->inputs[0], x}}, {logits, g->outputs[0]});
    EXPECT_GT(s.onednn_nodes, 20) << ops_of(s);
    EXPECT_LE(s.reference_nodes, 3) << ops_of(s);
  }
}

// The kB of transparent huge pages backing the mapping of this process that holds `p`
// (/proc/self/smaps), or -1 where no mapping does.
int64_t anon_huge_kb_at(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::string line;
  bool inside = false;
  while (std::getline(smaps, line)) {
    unsigned long long lo = 0, hi = 0;
    char dash = 0;
    std::istringstream head(line);
    if (head >> std::hex >> lo >> dash >> hi && dash == '-' && line.find(':') > line.find(' ')) {
      inside = addr >= lo && addr < hi;
    } else if (inside && line.rfind("AnonHugePages:", 0) == 0) {
      return std::stoll(line.substr(14));
    }
  }
  return -1;
}

TEST(OneDnnTest, HugePageBlocksAndTheWeightCacheInThem) {
  const at::Tensor block = onednn::huge_page_bytes(3 << 20);
  constexpr int64_t kHugePage = int64_t{2} << 20;
  EXPECT_EQ(block.numel(), 2 * kHugePage);  // whole huge pages
  EXPECT_EQ(reinterpret_cast<uintptr_t>(block.data_ptr()) % kHugePage, 0u);
  block.fill_(1);
  std::ifstream thp("/sys/kernel/mm/transparent_hugepage/enabled");
  std::string modes;
  std::getline(thp, modes);
  if (modes.empty() || modes.find("[never]") != std::string::npos) GTEST_SKIP() << "transparent huge pages off";
  // madvise'd memory touched whole is backed by huge pages (for such regions the kernel
  // compacts memory to find them when THP's defrag setting includes madvise, its default).
  EXPECT_GE(anon_huge_kb_at(block.data_ptr()), 2048);

  // The weight cache hands out 64-byte-aligned pieces of huge-page chunks.
  onednn::WeightCache cache;
  const at::Tensor w = at::rand({64, 32, 3, 3});
  const dnnl::memory::desc plain({64, 32, 3, 3}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::oihw);
  const dnnl::memory::desc blocked({64, 32, 3, 3}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::OIhw16i16o);
  dnnl::stream stream(onednn::cpu_engine());
  const dnnl::memory a = cache.get("w", w, plain, blocked, stream);
  const dnnl::memory b = cache.get("w", w, plain, plain, stream);
  ASSERT_EQ(cache.chunks.size(), 1u);
  const auto* base = static_cast<const char*>(cache.chunks[0].data_ptr());
  const auto* pa = static_cast<const char*>(a.get_data_handle());
  const auto* pb = static_cast<const char*>(b.get_data_handle());
  EXPECT_EQ(pa, base);
  EXPECT_EQ(pb, base + (blocked.get_size() + 63) / 64 * 64);
  EXPECT_EQ(cache.get("w", w, plain, blocked, stream).get_data_handle(), a.get_data_handle());  // made once
  EXPECT_TRUE(at::equal(at::from_blob(b.get_data_handle(), {64, 32, 3, 3}, at::kFloat), w));
}

}  // namespace
}  // namespace graft::exec

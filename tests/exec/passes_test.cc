// Graph passes: each rewrites what it should, and the optimised graph computes the same outputs
// (within float rounding) as the original; graph outputs and cut tensors survive.
#include "graft/exec/passes/passes.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "../common/calibrate.h"
#include "../common/graph_builder.h"
#include "graft/exec/session.h"
#include "graft/ir/shapes.h"
#include "graft/stitch/stitch.h"
#include "graft/zoo/zoo.h"

namespace graft::exec::passes {
namespace {

using testing::Builder;

// Runs `g` with and without passes and compares every output (relative to its largest value).
double max_relative_difference(const ir::Graph& g, const TensorMap& inputs, ir::Graph* optimised = nullptr,
                               const std::vector<std::string>& outputs = {}) {
  Session reference(g);
  ir::Graph o = g;
  optimize(o);
  Session fast(o);
  const TensorMap want = reference.run(inputs, outputs), got = fast.run(inputs, outputs);
  double worst = 0;
  for (const auto& [name, w] : want) {
    const double scale = std::max(w.abs().max().item<double>(), 1e-12);
    worst = std::max(worst, (got.at(name) - w).abs().max().item<double>() / scale);
  }
  if (optimised) *optimised = std::move(o);
  return worst;
}

int count(const ir::Graph& g, const std::string& op) {
  int n = 0;
  for (const auto& node : g.nodes) n += node.op_type == op;
  return n;
}

at::Tensor positive(std::vector<int64_t> shape) { return at::rand(shape) + 0.5; }

ir::Graph small_mobilenet(int64_t input) {
  zoo::MobileNetV1Options o;
  o.alpha = 0.25;
  o.input = input;
  o.classes = 10;
  return zoo::mobilenet_v1(o);
}

ir::Graph small_inception_resnet_v2() {
  zoo::InceptionResNetV2Options o;
  o.input = 75;
  o.width = 0.25;
  o.repeats = {1, 1, 1};
  o.classes = 10;
  return zoo::inception_resnet_v2(o);
}

TEST(PassesTest, BatchNormFoldsIntoConvAndGemm) {
  at::manual_seed(1);
  Builder b;
  b.input("x", {2, 3, 9, 9});
  b.node("Conv", {"x", b.init("w", at::randn({8, 3, 3, 3})), b.init("cb", at::randn({8}))}, {"c"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("BatchNormalization", {"c", b.init("g", at::randn({8})), b.init("b", at::randn({8})),
                                b.init("m", at::randn({8})), b.init("v", positive({8}))}, {"y"})
      .attributes.set(ir::Attribute::of_float("epsilon", 1e-3f));
  b.node("Flatten", {"y"}, {"f"});
  b.node("Gemm", {"f", b.init("gw", at::randn({5, 648})), b.init("gb", at::randn({5}))}, {"z"})
      .attributes.set(ir::Attribute::of_int("transB", 1));
  b.node("BatchNormalization", {"z", b.init("g2", at::randn({5})), b.init("b2", at::randn({5})),
                                b.init("m2", at::randn({5})), b.init("v2", positive({5}))}, {"out"});
  ir::Graph g = b.done({"out"});
  ir::Graph o = g;
  EXPECT_EQ(fold_batchnorm(o, protected_tensors(o)), 2);
  EXPECT_EQ(count(o, "BatchNormalization"), 0);
  EXPECT_EQ(o.outputs, std::vector<std::string>{"out"});
  EXPECT_LT(max_relative_difference(g, {{"x", at::randn({2, 3, 9, 9})}}), 1e-5);
  // A protected conv output (here: requested to be kept) stops the fold.
  ir::Graph kept = g;
  EXPECT_EQ(fold_batchnorm(kept, protected_tensors(kept, {"c"})), 1);
  EXPECT_TRUE(kept.has_value("c"));
}

// A BatchNormalization after no Conv folds into the Conv after it where that is exact (no
// padding, no groups); before a padded Conv it stays.
TEST(PassesTest, BatchNormFoldsIntoTheUnpaddedConvAfterIt) {
  at::manual_seed(31);
  Builder b;
  b.input("x", {2, 6, 7, 7});
  for (const char* k : {"1", "2"}) {
    const std::string s = k;
    if (s == "2") b.node("Relu", {"c1"}, {"r1"});
    b.node("BatchNormalization", {s == "1" ? "x" : "r1", b.init("g" + s, at::randn({6})), b.init("b" + s, at::randn({6})),
                                  b.init("m" + s, at::randn({6})), b.init("v" + s, positive({6}))},
           {"bn" + s});
    ir::Node& c = b.node("Conv", {"bn" + s, b.init("w" + s, at::randn({6, 6, 3, 3})), b.init("cb" + s, at::randn({6}))},
                         {s == "1" ? "c1" : "y"});
    if (s == "2") c.attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  }
  const ir::Graph g = b.done({"y"});
  ir::Graph o;
  EXPECT_LE(max_relative_difference(g, {{"x", at::randn({2, 6, 7, 7})}}, &o), 1e-5);
  EXPECT_EQ(count(o, "BatchNormalization"), 1);  // the one before the padded Conv
}

// A Transpose pair that composes to the identity disappears; one that does not stays.
TEST(PassesTest, TransposePairsCancel) {
  at::manual_seed(32);
  Builder b;
  b.input("x", {2, 3, 4, 5});
  b.node("Transpose", {"x"}, {"t1"}).attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  b.node("Transpose", {"t1"}, {"t2"}).attributes.set(ir::Attribute::of_ints("perm", {0, 3, 1, 2}));
  b.node("Relu", {"t2"}, {"r"});
  b.node("Transpose", {"r"}, {"u1"}).attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  b.node("Transpose", {"u1"}, {"y"}).attributes.set(ir::Attribute::of_ints("perm", {0, 2, 3, 1}));
  const ir::Graph g = b.done({"y"});
  ir::Graph o;
  EXPECT_EQ(max_relative_difference(g, {{"x", at::randn({2, 3, 4, 5})}}, &o), 0.0);
  EXPECT_EQ(count(o, "Transpose"), 2);
  EXPECT_EQ(o.nodes.front().op_type, "Relu");
  EXPECT_EQ(o.nodes.front().inputs[0], "x");
}

TEST(PassesTest, ConstantsFoldIncludingStaticShapeChains) {
  Builder b;
  b.input("x", {2, 4, 3, 3});
  b.node("Shape", {"x"}, {"s"});
  b.node("Gather", {"s", b.init("i0", at::scalar_tensor(0, at::kLong))}, {"n"});
  b.node("Unsqueeze", {"n", b.init("ax", at::tensor(std::vector<int64_t>{0}))}, {"n1"});
  b.node("Concat", {"n1", b.init("rest", at::tensor(std::vector<int64_t>{-1}))}, {"target"})
      .attributes.set(ir::Attribute::of_int("axis", 0));
  b.node("Reshape", {"x", "target"}, {"flat"});
  b.node("Add", {b.init("a", at::ones({36})), b.init("c", at::full({36}, 2.0))}, {"three"});
  b.node("Mul", {"flat", "three"}, {"out"});
  ir::Graph g = b.done({"out"});
  ir::Graph o;
  EXPECT_EQ(max_relative_difference(g, {{"x", at::randn({2, 4, 3, 3})}}, &o), 0.0);
  EXPECT_EQ(count(o, "Shape") + count(o, "Gather") + count(o, "Concat") + count(o, "Add"), 0);
  EXPECT_EQ(o.nodes.size(), 2u);  // Reshape, Mul
  EXPECT_TRUE(at::equal(o.initializers.at("three"), at::full({36}, 3.0)));
}

TEST(PassesTest, DeadNodesIdentityAndDropoutGo) {
  Builder b;
  b.input("x", {1, 4});
  b.node("Identity", {"x"}, {"i1"});
  b.node("Dropout", {"i1"}, {"d", ""});
  b.node("Relu", {"d"}, {"r"});
  b.node("Sigmoid", {"r"}, {"unused"});                 // dead
  b.node("Exp", {"unused"}, {"unused2"});               // dead (an op graft does not even run)
  b.node("Identity", {"r"}, {"out"});                   // feeds the graph output
  ir::Graph g = b.done({"out"});
  ir::Graph o = g;
  const auto protect = protected_tensors(o);
  EXPECT_EQ(remove_dead(o, protect), 2);
  EXPECT_EQ(remove_identity(o, protect), 3);
  ASSERT_EQ(o.nodes.size(), 1u);
  EXPECT_EQ(o.nodes[0].op_type, "Relu");
  EXPECT_EQ(o.nodes[0].outputs[0], "out");  // the graph output keeps its name
  Session s(o);
  const at::Tensor x = at::randn({1, 4});
  EXPECT_TRUE(at::equal(s.run({{"x", x}}).at("out"), at::relu(x)));
}

TEST(PassesTest, ZeroPadFoldsIntoConvPads) {
  Builder b;
  b.input("x", {1, 4, 8, 8});
  b.node("Pad", {"x", b.init("p", at::tensor(std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1}))}, {"xp"});
  ir::Node& c = b.node("Conv", {"xp", b.init("w", at::randn({4, 1, 3, 3}))}, {"out"});
  c.attributes.set(ir::Attribute::of_int("group", 4));
  c.attributes.set(ir::Attribute::of_ints("strides", {2, 2}));
  ir::Graph g = b.done({"out"});
  ir::Graph o;
  EXPECT_LT(max_relative_difference(g, {{"x", at::randn({1, 4, 8, 8})}}, &o), 1e-6);
  EXPECT_EQ(count(o, "Pad"), 0);
  EXPECT_EQ(o.nodes[0].attributes.get_ints("pads"), (std::vector<int64_t>{0, 0, 1, 1}));
  // Reflect padding is not the convolution's zero padding: it stays.
  ir::Graph r = g;
  r.nodes[0].attributes.set(ir::Attribute::of_string("mode", "reflect"));
  EXPECT_EQ(fold_pad_into_conv(r, protected_tensors(r)), 0);
}

TEST(PassesTest, ZeroPadFoldsIntoAnAveragePoolThatCountsIt) {
  Builder b;
  b.input("x", {2, 3, 7, 9});
  b.node("Pad", {"x", b.init("p", at::tensor(std::vector<int64_t>{0, 0, 1, 2, 0, 0, 1, 0}))}, {"xp"});
  ir::Node& pool = b.node("AveragePool", {"xp"}, {"out"});
  pool.attributes.set(ir::Attribute::of_ints("kernel_shape", {3, 3}));
  pool.attributes.set(ir::Attribute::of_ints("strides", {2, 1}));
  ir::Graph g = b.done({"out"});
  ir::Graph o;
  EXPECT_LT(max_relative_difference(g, {{"x", at::randn({2, 3, 7, 9})}}, &o), 1e-6);
  EXPECT_EQ(count(o, "Pad"), 0);
  EXPECT_EQ(o.nodes[0].attributes.get_ints("pads"), (std::vector<int64_t>{1, 2, 1, 0}));
  EXPECT_EQ(o.nodes[0].attributes.get_int("count_include_pad", 0), 1);
  // A pool that pads itself without counting its pads, or one in ceil mode, keeps the Pad.
  ir::Graph own = g;
  own.nodes[1].attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  EXPECT_EQ(fold_pad_into_pool(own, protected_tensors(own)), 0);
  ir::Graph ceil = g;
  ceil.nodes[1].attributes.set(ir::Attribute::of_int("ceil_mode", 1));
  EXPECT_EQ(fold_pad_into_pool(ceil, protected_tensors(ceil)), 0);
  // A MaxPool ignores its pads; padded zeros it would not ignore.
  ir::Graph max = g;
  max.nodes[1].op_type = "MaxPool";
  EXPECT_EQ(fold_pad_into_pool(max, protected_tensors(max)), 0);
}

TEST(PassesTest, ConstantScaleFoldsIntoTheConvBeforeIt) {
  at::manual_seed(3);
  for (const auto& shape : std::vector<std::vector<int64_t>>{{}, {1}, {6, 1, 1}, {1, 6, 1, 1}}) {
    Builder b;
    b.input("x", {2, 3, 5, 5});
    b.node("Conv", {"x", b.init("w", at::randn({6, 3, 3, 3})), b.init("cb", at::randn({6}))}, {"c"});
    b.node("Mul", {b.init("s", at::randn(shape)), "c"}, {"m"});
    b.node("Add", {"m", "x2"}, {"out"});
    b.input("x2", {2, 6, 3, 3});
    ir::Graph g = b.done({"out"});
    ir::Graph o;
    EXPECT_LT(max_relative_difference(g, {{"x", at::randn({2, 3, 5, 5})}, {"x2", at::randn({2, 6, 3, 3})}}, &o), 1e-5);
    EXPECT_EQ(count(o, "Mul"), 0) << shape.size();
    ASSERT_EQ(o.nodes.size(), 1u);  // the sum fused too
    EXPECT_EQ(o.nodes[0].op_type, kFusedConv);
  }
  // Per spatial position, or after a fused activation, the scale is no conv weight: it stays.
  Builder b;
  b.input("x", {1, 2, 4, 4});
  b.node("Conv", {"x", b.init("w", at::randn({2, 2, 1, 1}))}, {"c"});
  b.node("Mul", {"c", b.init("s", at::randn({1, 4, 4}))}, {"m"});
  b.node("Relu", {"m"}, {"r"});
  b.node("Mul", {"r", b.init("t", at::randn({2, 1, 1}))}, {"out"});
  ir::Graph g = b.done({"out"});
  ir::Graph o;
  EXPECT_LT(max_relative_difference(g, {{"x", at::randn({1, 2, 4, 4})}}, &o), 1e-5);
  EXPECT_EQ(count(o, "Mul"), 2);
}

TEST(PassesTest, ResidualAddAndActivationFuseIntoTheConv) {
  at::manual_seed(2);
  Builder b;
  b.input("x", {2, 8, 6, 6});
  b.node("Conv", {"x", b.init("w1", at::randn({8, 8, 1, 1}) * 0.3)}, {"c1"});
  b.node("BatchNormalization", {"c1", b.init("g", at::randn({8})), b.init("b", at::randn({8})),
                                b.init("m", at::randn({8})), b.init("v", positive({8}))}, {"bn"});
  b.node("Add", {"x", "bn"}, {"sum"});
  b.node("Relu", {"sum"}, {"r"});
  b.node("Conv", {"r", b.init("w2", at::randn({8, 8, 3, 3}) * 0.1)}, {"c2"})
      .attributes.set(ir::Attribute::of_ints("pads", {1, 1, 1, 1}));
  b.node("Clip", {"c2", b.init("lo", at::tensor(0.0f)), b.init("hi", at::tensor(6.0f))}, {"out"});
  ir::Graph g = b.done({"out"});
  ir::Graph o;
  EXPECT_LT(max_relative_difference(g, {{"x", at::randn({2, 8, 6, 6})}}, &o), 1e-5);
  ASSERT_EQ(o.nodes.size(), 2u);
  for (const auto& n : o.nodes) {
    EXPECT_EQ(n.domain, kDomain);
    EXPECT_EQ(n.op_type, kFusedConv);
  }
  EXPECT_EQ(o.nodes[0].inputs.size(), 4u);  // X, W, B, Z
  EXPECT_EQ(o.nodes[0].attributes.get_string("activation", ""), "Relu");
  EXPECT_EQ(o.nodes[1].attributes.get_string("activation", ""), "Clip");
  EXPECT_EQ(o.nodes[1].attributes.get_floats("activation_params"), (std::vector<float>{0.0f, 6.0f}));
  // A broadcasting Add is not a residual: it stays.
  Builder c;
  c.input("x", {1, 2, 4, 4});
  c.node("Conv", {"x", c.init("w", at::randn({2, 2, 1, 1}))}, {"y"});
  c.node("Add", {"y", c.init("k", at::randn({2, 1, 1}))}, {"out"});
  ir::Graph bc = c.done({"out"});
  EXPECT_EQ(fuse_conv_add(bc, protected_tensors(bc)), 0);
}

TEST(PassesTest, WholeModelsKeepTheirOutputs) {
  at::manual_seed(3);
  ir::Graph m = small_mobilenet(64);
  // Statistics from 16 images (few samples make near-constant channels whose huge BatchNorm
  // scales amplify float rounding, in the original graph as much as in the folded one).
  testing::calibrate_batch_norm(m, at::rand({16, 3, 64, 64}) * 2 - 1);
  const at::Tensor xm = at::rand({4, 3, 64, 64}) * 2 - 1;
  ir::Graph om;
  // The logits (the Softmax's input) are compared, not the probabilities alone.
  EXPECT_LT(max_relative_difference(m, {{"input_1", xm}}, &om, {"predictions", "conv_preds"}), 1e-4);
  EXPECT_EQ(count(om, "BatchNormalization") + count(om, "Pad") + count(om, "Clip"), 0);
  EXPECT_LT(om.nodes.size(), m.nodes.size() / 2);

  ir::Graph irv2 = small_inception_resnet_v2();
  testing::calibrate_batch_norm(irv2, at::rand({16, 3, 75, 75}) * 2 - 1);
  const at::Tensor xi = at::rand({4, 3, 75, 75}) * 2 - 1;
  ir::Graph oi;
  EXPECT_LT(max_relative_difference(irv2, {{"input_1", xi}}, &oi, {"predictions", "predictions/logits"}), 1e-4);
  EXPECT_EQ(count(oi, "BatchNormalization"), 0);
}

TEST(PassesTest, CutTensorsOfAHybridSurvive) {
  ir::Graph h = stitch::stitch(small_mobilenet(32), "conv_pad_6", small_inception_resnet_v2(), "mixed_6a", {"conv"});
  const auto protect = protected_tensors(h);
  for (const char* t : {"a/conv_pad_6", "b/mixed_6a"}) EXPECT_TRUE(protect.count(t)) << t;
  ir::Graph o = h;
  optimize(o);
  // conv_pad_6 is a Pad in front of a Conv, which would otherwise fold away.
  EXPECT_TRUE(o.has_value("a/conv_pad_6"));
  EXPECT_TRUE(o.has_value("b/mixed_6a"));
  SessionOptions so;
  so.optimize = true;
  Session s(h, so);
  const at::Tensor x = at::rand({1, 3, 32, 32});
  const TensorMap got = s.run({{"input_1", x}}, {"a/conv_pad_6", "b/mixed_6a", "predictions"});
  const TensorMap want = Session(h).run({{"input_1", x}}, {"a/conv_pad_6", "b/mixed_6a", "predictions"});
  for (const auto& [name, w] : want) EXPECT_TRUE(at::allclose(got.at(name), w, 1e-4, 1e-6)) << name;
}

}  // namespace
}  // namespace graft::exec::passes

#include <gtest/gtest.h>

#include "graft/adapt/adapter.h"
#include "graft/core/error.h"
#include "../common/graph_builder.h"

namespace graft::adapt {
namespace {

Target target(int64_t c, int64_t h, int64_t w, Activation a = Activation::kRelu) {
  Target t;
  t.shape = {c, h, w};
  t.activation = a;
  return t;
}

TEST(DesignTest, SolverSolutionsSatisfyTheFormula) {
  for (int64_t in = 1; in <= 64; ++in) {
    for (int64_t out = 1; out <= in; ++out) {
      for (const Ksp& x : solve_conv(in, out)) {
        ASSERT_EQ((in + 2 * x.p - x.k) / x.s + 1, out) << in << "->" << out;
        ASSERT_LT(x.p, x.k);
      }
    }
  }
  // The canonical example: 29 -> 8 with stride 4, kernels 3 and 5.
  const auto s = solve_conv(29, 8);
  auto has = [&](int64_t k, int64_t st, int64_t p) {
    return std::any_of(s.begin(), s.end(), [&](const Ksp& x) { return x.k == k && x.s == st && x.p == p; });
  };
  EXPECT_TRUE(has(3, 4, 1));
  EXPECT_TRUE(has(5, 4, 2));
  EXPECT_EQ(s.front().s, 4);
}

// Over a grid of shape pairs every candidate reaches the target exactly (checked by walking
// its layers), and there is always at least one.
TEST(DesignTest, GridOfShapePairsAlwaysYieldsExactAdapters) {
  int pairs = 0, candidates = 0;
  for (int64_t h1 = 1; h1 <= 64; h1 += 1) {
    for (int64_t h2 = 1; h2 <= 64; h2 += (h1 % 7 == 0 ? 1 : 5)) {
      for (auto [c1, c2] : {std::pair<int64_t, int64_t>{3, 16}, {64, 64}, {256, 384}}) {
        const Shape3 from{c1, h1, h1};
        const Target to = target(c2, h2, h2);
        const auto list = design(from, to);
        ASSERT_FALSE(list.empty()) << from.str() << " -> " << to.shape.str();
        for (auto a : list) {
          Adapter check = parse_spec(a.spec(), from);
          ASSERT_EQ(check.out, to.shape) << a.spec();
          ASSERT_EQ(check.params, a.params) << a.spec();
          ++candidates;
        }
        ++pairs;
      }
    }
  }
  EXPECT_GT(pairs, 1000);
  std::printf("%d shape pairs, %d candidate adapters, all exact\n", pairs, candidates);
}

TEST(DesignTest, CanonicalCandidates) {
  const auto list = design({256, 29, 29}, target(384, 8, 8));
  std::set<std::string> specs, families;
  for (const auto& a : list) {
    specs.insert(a.spec());
    families.insert(a.family);
  }
  EXPECT_TRUE(specs.count("conv:k=3,s=4,p=1,c=384;bn;relu"));
  EXPECT_TRUE(specs.count("conv:k=5,s=4,p=2,c=384;bn;relu"));
  EXPECT_TRUE(families.count("linear"));
  EXPECT_TRUE(families.count("bottleneck"));
  for (const auto& a : list) {
    if (a.family != "bottleneck") continue;
    EXPECT_GE(a.split_after, 0);
    // The split tensor is at most 1/8 of the source tensor.
    EXPECT_LE(a.split_shape.c * a.split_shape.h * a.split_shape.w * 8, 256 * 29 * 29);
  }
  // The parameter and MAC counts of k=3, s=4: 384*256*9 weights + 4*384 BN; 8*8 outputs.
  for (const auto& a : list) {
    if (a.spec() == "conv:k=3,s=4,p=1,c=384;bn;relu") {
      EXPECT_EQ(a.params, 384 * 256 * 9 + 4 * 384);
      EXPECT_EQ(a.macs, 384LL * 8 * 8 * 256 * 9);
    }
  }
}

TEST(DesignTest, FinalActivationFollowsTheTarget) {
  const auto relu6 = design({32, 16, 16}, target(32, 8, 8, Activation::kRelu6), "conv");
  EXPECT_EQ(relu6.front().layers.back().kind, Layer::Kind::kRelu6);
  const auto linear = design({32, 16, 16}, target(32, 8, 8, Activation::kNone), "conv");
  EXPECT_EQ(linear.front().layers.back().kind, Layer::Kind::kBatchNorm);
}

TEST(DesignTest, TargetActivationLooksThroughPoolingAndZeroPadding) {
  // relu -> MaxPool -> Pad(0) is as non-negative as the ReLU; a Pad with 1 or a Conv is not.
  testing::Builder b;
  b.input("x", {1, 8, 16, 16});
  b.node("Relu", {"x"}, {"r"});
  b.node("MaxPool", {"r"}, {"pooled"}).attributes.set(ir::Attribute::of_ints("kernel_shape", {2, 2}));
  b.g.nodes.back().attributes.set(ir::Attribute::of_ints("strides", {2, 2}));
  b.init("pads", at::tensor(std::vector<int64_t>{0, 0, 1, 1, 0, 0, 1, 1}));
  b.init("zero", at::zeros({}, at::kFloat));
  b.init("one", at::ones({}, at::kFloat));
  b.node("Pad", {"pooled", "pads", "zero"}, {"padded0"});
  b.node("Pad", {"pooled", "pads", "one"}, {"padded1"});
  b.init("w", at::zeros({8, 8, 1, 1}));
  b.node("Conv", {"x", "w"}, {"conv"});
  b.node("AveragePool", {"conv"}, {"conv_pooled"}).attributes.set(ir::Attribute::of_ints("kernel_shape", {2, 2}));
  const ir::Graph g = b.done({"padded0", "padded1", "conv_pooled"});
  EXPECT_EQ(target_of(g, "pooled").activation, Activation::kRelu);
  const Target padded = target_of(g, "padded0");
  EXPECT_EQ(padded.activation, Activation::kRelu);
  EXPECT_NE(padded.why.find("through Pad, MaxPool"), std::string::npos) << padded.why;
  EXPECT_EQ(target_of(g, "padded1").activation, Activation::kNone);
  const Target conv = target_of(g, "conv_pooled");
  EXPECT_EQ(conv.activation, Activation::kNone);
  EXPECT_NE(conv.why.find("Conv (through AveragePool)"), std::string::npos) << conv.why;
}

TEST(DesignTest, UpsamplingPrefersResizeThenTransposedConv) {
  // The family's best (graft stitch's default) resizes and convolves; the transposed
  // convolution is the second candidate. Both reach the target shape.
  const auto list = design({64, 7, 7}, target(32, 14, 14), "conv");
  ASSERT_GE(list.size(), 2u);
  EXPECT_EQ(list[0].spec(), "resize:h=14,w=14;conv:k=3,s=1,p=1,c=32;bn;relu");
  EXPECT_EQ(list[1].layers.front().kind, Layer::Kind::kConvTranspose);
  for (const Adapter& a : list) EXPECT_EQ(a.out, (Shape3{32, 14, 14})) << a.spec();
  // No duplicate of the Resize candidate further down.
  EXPECT_EQ(std::count_if(list.begin(), list.end(),
                          [](const Adapter& a) { return a.layers.front().kind == Layer::Kind::kResize; }),
            1);
}

TEST(DesignTest, UpsamplingBottleneckSplitsAtTheSourceSize) {
  // Going up (8x28x28 -> 8x37x37, the bundled pair's first cut points), the encoder stays at 28x28
  // and the decoder resizes: the tensor sent is 1/8 of the source, not a larger one at 37x37.
  const auto list = design({8, 28, 28}, target(8, 37, 37), "bottleneck");
  ASSERT_EQ(list.size(), 1u);
  const Adapter& a = list.front();
  EXPECT_EQ(a.split_shape, (Shape3{1, 28, 28}));
  EXPECT_EQ(a.out, (Shape3{8, 37, 37}));
  EXPECT_EQ(a.spec(), "conv:k=3,s=1,p=1,c=1;bn;relu;split;resize:h=37,w=37;conv:k=3,s=1,p=1,c=8;bn;relu");
  // Going down, the encoder reaches the target size as before.
  const auto down = design({256, 29, 29}, target(384, 8, 8), "bottleneck");
  ASSERT_FALSE(down.empty());
  EXPECT_EQ(down.front().split_shape.h, 8);
  EXPECT_LE(down.front().split_shape.c * 8 * 8 * 8, 256 * 29 * 29);
}

TEST(DesignTest, ImpossibleSpecIsRejectedWithFeasibleAlternatives) {
  const Shape3 from{256, 29, 29};
  const Target to = target(384, 8, 8, Activation::kRelu6);
  EXPECT_EQ(validate_spec("conv:k=3,s=4,p=1,c=384;bn;relu6", from, to).out, to.shape);
  try {
    validate_spec("conv:k=3,s=3,p=1,c=384;bn;relu6", from, to);
    FAIL();
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("to 384x10x10, not the target 384x8x8"), std::string::npos) << msg;
    EXPECT_NE(msg.find("conv:k=3,s=4,p=1,c=384;bn;relu6"), std::string::npos) << msg;
    // Every alternative offered is itself valid.
    const size_t at = msg.find("alternatives: ");
    std::string rest = msg.substr(at + 14);
    size_t pos = 0;
    while (pos < rest.size()) {
      size_t bar = rest.find(" | ", pos);
      const std::string alt = rest.substr(pos, bar == std::string::npos ? std::string::npos : bar - pos);
      EXPECT_EQ(parse_spec(alt, from).out, to.shape) << alt;
      if (bar == std::string::npos) break;
      pos = bar + 3;
    }
  }
  EXPECT_THROW(validate_spec("conv:k=3,q=1,c=384", from, to), Error);   // unknown key
  EXPECT_THROW(validate_spec("fancy:k=3", from, to), Error);            // unknown layer
  EXPECT_THROW(validate_spec("conv:k=99,s=1,c=384", from, to), Error);  // does not fit
  EXPECT_THROW(validate_spec("", from, to), Error);
}

}  // namespace
}  // namespace graft::adapt

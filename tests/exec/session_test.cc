#include "graft/exec/session.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "../common/calibrate.h"
#include "../common/errors.h"
#include "graft/core/error.h"
#include "graft/ir/shapes.h"
#include "graft/zoo/zoo.h"

namespace graft::exec {
namespace {

ir::Graph small_mobilenet() {
  zoo::MobileNetV1Options o;
  o.alpha = 0.25;
  o.input = 32;
  o.classes = 10;
  o.seed = 3;
  return zoo::mobilenet_v1(o);
}


TEST(SessionTest, RunsAZooModelAndFetchesIntermediates) {
  Session s(small_mobilenet());
  at::Tensor x = at::rand({2, 3, 32, 32});
  TensorMap out = s.run({{"input_1", x}}, {"predictions", "conv_pad_6", "conv_pw_5_relu"});
  EXPECT_EQ(out.at("predictions").sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_TRUE(at::allclose(out.at("predictions").sum(1), at::ones({2})));
  EXPECT_EQ(out.at("conv_pad_6").sizes(), (std::vector<int64_t>{2, 64, 5, 5}));
  EXPECT_GE(out.at("conv_pw_5_relu").min().item<float>(), 0.0f);  // ReLU6 output
  EXPECT_LE(out.at("conv_pw_5_relu").max().item<float>(), 6.0f);
  // Fetching only an early tensor gives the same values as fetching it with everything else.
  at::Tensor early = s.run({{"input_1", x}}, {"conv_pad_6"}).at("conv_pad_6");
  EXPECT_TRUE(at::equal(early, out.at("conv_pad_6")));
}

TEST(SessionTest, InputErrorsNameTheInputAndShowExpectedVsGot) {
  Session s(small_mobilenet());
  std::string e = testing::error_message([&] { s.run({{"input_1", at::rand({1, 3, 31, 32})}}); });
  EXPECT_NE(e.find("input 'input_1': expected float32 (N, 3, 32, 32), got Float (1, 3, 31, 32)"),
            std::string::npos) << e;
  e = testing::error_message([&] { s.run({{"input_1", at::zeros({1, 3, 32, 32}, at::kLong)}}); });
  EXPECT_NE(e.find("got Long"), std::string::npos) << e;
  e = testing::error_message([&] { s.run({}); });
  EXPECT_NE(e.find("missing input 'input_1'"), std::string::npos) << e;
  e = testing::error_message([&] { s.run({{"input_1", at::rand({1, 3, 32, 32})}, {"extra", at::rand({1})}}); });
  EXPECT_NE(e.find("'extra' is not an input"), std::string::npos) << e;
  e = testing::error_message([&] { s.run({{"input_1", at::rand({1, 3, 32, 32})}}, {"no_such_tensor"}); });
  EXPECT_NE(e.find("no tensor named 'no_such_tensor'"), std::string::npos) << e;
}

TEST(SessionTest, UnsupportedOpsAreAllListedBeforeRunning) {
  ir::Graph g = small_mobilenet();
  g.nodes[3].op_type = "Gelu2";
  g.nodes[5].op_type = "Gelu2";
  g.nodes[7].op_type = "FancyNorm";
  const std::string e = testing::error_message([&] { Session s(g, {}, "m.onnx"); });
  EXPECT_NE(e.find("m.onnx: graft cannot run 2 op type(s)"), std::string::npos) << e;
  EXPECT_NE(e.find("Gelu2 (first used by node '" + g.nodes[3].name + "')"), std::string::npos) << e;
  EXPECT_NE(e.find("FancyNorm (first used by node '" + g.nodes[7].name + "')"), std::string::npos) << e;
}

TEST(SessionTest, CheckFiniteNamesTheFirstNode) {
  ir::Graph g;
  g.inputs = {"x"};
  g.values["x"].dtype = ir::kFloat;
  g.values["x"].shape = ir::Shape{2};
  g.initializers["zero"] = at::zeros({2});
  ir::Node div;
  div.name = "divide";
  div.op_type = "Div";
  div.inputs = {"x", "zero"};
  div.outputs = {"q"};
  ir::Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"q"};
  relu.outputs = {"y"};
  g.nodes = {div, relu};
  g.outputs = {"y"};
  g.reindex();
  Session s(g);
  RunOptions check;
  check.check_finite = true;
  const std::string e = testing::error_message([&] { s.run({{"x", at::ones({2})}}, {}, check); });
  EXPECT_NE(e.find("node 'divide' (Div) produced Inf in 'q'"), std::string::npos) << e;
  EXPECT_NO_THROW(s.run({{"x", at::ones({2})}}));  // without the check, Inf flows on
}

// A trainable block inside a frozen model: the loss goes down, the trainable block changes
// (including its BatchNorm running statistics), and everything frozen is bit-identical.
TEST(SessionTest, TrainingTouchesOnlyTheTrainableBlock) {
  ir::Graph g = small_mobilenet();
  at::manual_seed(0);
  at::Tensor x = at::rand({16, 3, 32, 32});
  at::Tensor labels = at::randint(0, 10, {16}, at::kLong);
  testing::calibrate_batch_norm(g, x);
  std::map<std::string, at::Tensor> original;
  for (const auto& [name, t] : g.initializers) original[name] = t.clone();

  SessionOptions opts;
  opts.training = true;
  opts.trainable = {"conv_pw_13/kernel", "conv_pw_13_bn/gamma", "conv_pw_13_bn/beta",
                    "conv_preds/kernel", "conv_preds/bias"};
  opts.train_nodes = {"conv_pw_13_bn"};
  Session s(g, opts);

  std::vector<double> losses;
  for (int step = 0; step < 8; ++step) {
    at::Tensor logits = s.run({{"input_1", x}}, {"reshape_2"}).at("reshape_2");
    at::Tensor loss = at::cross_entropy_loss(logits, labels);
    losses.push_back(loss.item<double>());
    loss.backward();
    at::NoGradGuard no_grad;
    for (at::Tensor p : s.trainable_parameters()) {
      p.sub_(p.grad() * 0.1);
      p.mutable_grad().zero_();
    }
  }
  for (size_t i = 1; i < losses.size(); ++i) EXPECT_LT(losses[i], losses[i - 1]) << "step " << i;
  EXPECT_LT(losses.back(), losses.front() * 0.7) << losses.front() << " -> " << losses.back();
  for (const auto& [name, t] : s.initializers()) {
    const bool trainable = opts.trainable.count(name) > 0;
    const bool trained_stats = name == "conv_pw_13_bn/moving_mean" || name == "conv_pw_13_bn/moving_variance";
    const bool same = at::equal(t.detach(), original.at(name));
    if (trainable || trained_stats) {
      EXPECT_FALSE(same) << name << " did not change";
    } else {
      EXPECT_TRUE(same) << name << " changed although frozen";
    }
  }
}

}  // namespace
}  // namespace graft::exec

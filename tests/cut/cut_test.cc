// Cutting, checked as properties: for every cut point (and for random multi-tensor frontiers)
// tail(head(x)) equals the model's output, and head and tail hold each node exactly once.
#include "graft/cut/cut.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "../common/calibrate.h"
#include "../common/errors.h"
#include "graft/core/error.h"
#include "graft/exec/session.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "graft/zoo/zoo.h"

namespace graft::cut {
namespace {

namespace fs = std::filesystem;

// Shapes inferred with the batch pinned to `batch` (0: left symbolic).
ir::Graph shaped(ir::Graph g, int64_t batch = 0) {
  if (batch > 0) ir::fix_batch(g, batch);
  ir::infer_shapes(g);
  return g;
}

ir::Graph calibrated_mobilenet() {
  zoo::MobileNetV1Options o;
  o.alpha = 0.25;
  o.input = 64;
  o.classes = 10;
  ir::Graph g = zoo::mobilenet_v1(o);
  testing::calibrate_batch_norm(g, at::rand({8, 3, 64, 64}));
  return shaped(g);
}

ir::Graph calibrated_small_irv2() {
  zoo::InceptionResNetV2Options o;
  o.input = 75;
  o.width = 0.25;
  o.repeats = {2, 2, 2};
  o.classes = 10;
  ir::Graph g = zoo::inception_resnet_v2(o);
  testing::calibrate_batch_norm(g, at::rand({4, 3, 75, 75}));
  return shaped(g);
}

// Checks one cut of `g` against the full model on input `x`; returns false (with a failure
// recorded) when something differs.
void check_cut(const ir::Graph& g, const std::vector<std::string>& cut, const at::Tensor& x,
               const at::Tensor& want, const std::string& what) {
  SCOPED_TRACE(what);
  ir::Graph h = head(g, cut), t = tail(g, cut);
  std::multiset<std::string> names;
  for (const auto& n : h.nodes) names.insert(n.name);
  for (const auto& n : t.nodes) names.insert(n.name);
  std::multiset<std::string> original;
  for (const auto& n : g.nodes) original.insert(n.name);
  EXPECT_EQ(names, original) << "head and tail must hold each node exactly once";
  exec::Session hs(h), ts(t);
  exec::TensorMap mid = hs.run({{g.inputs[0], x}});
  ASSERT_EQ(mid.size(), cut.size());
  at::Tensor got = ts.run(mid).at(g.outputs[0]);
  EXPECT_LE((got - want).abs().max().item<double>(), 1e-5);
}

void check_every_cut_point(const ir::Graph& g, const at::Tensor& x, size_t min_points) {
  const at::Tensor want = exec::Session(g).run({{g.inputs[0], x}}).at(g.outputs[0]);
  ASSERT_GT(want.abs().max().item<double>(), 1e-3) << "the model's output is degenerate";
  const auto points = cut_points(g);
  EXPECT_GE(points.size(), min_points);
  for (const auto& p : points) check_cut(g, {p.tensor}, x, want, "cut point " + p.tensor);
}

void check_random_frontiers(const ir::Graph& g, const at::Tensor& x, int trials) {
  const at::Tensor want = exec::Session(g).run({{g.inputs[0], x}}).at(g.outputs[0]);
  std::mt19937 rng(42);
  int multi = 0;
  for (int i = 0; i < trials; ++i) {
    const int node = static_cast<int>(rng() % (g.nodes.size() - 1));
    const auto f = frontier(g, node);
    if (!leaks(g, f).empty()) continue;
    multi += f.size() > 1;
    check_cut(g, f, x, want, "frontier of " + g.nodes[static_cast<size_t>(node)].name);
  }
  EXPECT_GT(multi, 0) << "no multi-tensor frontier was tried";
}

TEST(CutTest, EveryCutPointOfMobileNet) {
  ir::Graph g = calibrated_mobilenet();
  const auto points = cut_points(g);
  // A chain: every node output but the last is a cut point.
  EXPECT_EQ(points.size(), g.nodes.size() - 1);
  check_every_cut_point(g, at::rand({2, 3, 64, 64}), 80);
}

TEST(CutTest, EveryCutPointAndRandomFrontiersOfSmallInceptionResNetV2) {
  ir::Graph g = calibrated_small_irv2();
  const auto points = cut_points(g);
  // Inside a block no single tensor carries everything: block inputs/outputs are cut points,
  // branch tensors are not.
  std::set<std::string> names;
  for (const auto& p : points) names.insert(p.tensor);
  EXPECT_TRUE(names.count("mixed_5b"));
  EXPECT_TRUE(names.count("block35_1_ac"));
  EXPECT_TRUE(names.count("mixed_7a"));
  EXPECT_FALSE(names.count("block35_1_mixed"));
  at::Tensor x = at::rand({2, 3, 75, 75});
  check_every_cut_point(g, x, 20);
  check_random_frontiers(g, x, 40);
}

TEST(CutTest, PyTorchExports) {
  const fs::path root = GRAFT_INTEROP_DIR;
  ASSERT_TRUE(fs::exists(root / "STAMP")) << "interop fixtures missing (CTest fixture interop_fixtures)";
  for (const char* name : {"resnet18_op13", "mobilenet_v2_op11", "densenet121_op17",
                           "efficientnet_b0_op13", "googlenet_op17"}) {
    SCOPED_TRACE(name);
    ir::Graph g = shaped(ir::load((root / name / "model.onnx").string()));
    at::Tensor x = ir::load_tensor((root / name / "test_data_set_0/input_0.pb").string());
    check_every_cut_point(g, x, 4);
    check_random_frontiers(g, x, 10);
  }
}

// Every dimension known, or the batch symbol.
bool complete(const std::optional<ir::Shape>& s) {
  if (!s) return false;
  for (const ir::Dim& d : *s) {
    if (!d.known() && d.param.empty()) return false;
  }
  return true;
}

// The property over every cut point of every model in the interop set: exports with a dynamic
// batch axis (run at batch 1 and 3, the batch stays symbolic in both halves) and with a fixed
// one; ShuffleNet v2 included, whose channel split static inference cannot size. Both halves
// carry full shapes and pass the ONNX checker.
TEST(CutTest, EveryCutPointOfEveryInteropModel) {
  const fs::path root = GRAFT_INTEROP_DIR;
  ASSERT_TRUE(fs::exists(root / "STAMP")) << "interop fixtures missing (CTest fixture interop_fixtures)";
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(root)) {
    if (fs::exists(e.path() / "model.onnx")) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  ASSERT_GE(dirs.size(), 40u);
  bool shufflenet = false;
  size_t points_checked = 0;
  for (const auto& dir : dirs) {
    const std::string name = dir.filename().string();
    SCOPED_TRACE(name);
    shufflenet |= name == "shufflenet_v2_x1_0_op13";
    ir::Graph g = shaped(ir::load((dir / "model.onnx").string()));
    exec::complete_shapes(g);
    const bool dynamic = !(*g.value(g.inputs[0]).shape)[0].known();
    EXPECT_EQ(dynamic, name.find("_fixed") == std::string::npos);
    const at::Tensor x1 = ir::load_tensor((dir / "test_data_set_0/input_0.pb").string());
    std::vector<at::Tensor> xs{x1};
    if (dynamic) xs.push_back(at::cat({x1, x1 * 0.5, -x1}));
    std::vector<at::Tensor> wants;
    exec::Session full(g);
    for (const auto& x : xs) wants.push_back(full.run({{g.inputs[0], x}}).at(g.outputs[0]));
    const auto points = cut_points(g);
    EXPECT_GE(points.size(), 3u);
    for (const auto& p : points) {
      SCOPED_TRACE(p.tensor);
      // A user names the layer, as `graft cuts` lists it: its node cuts at the one tensor.
      const ir::Node& producer = g.nodes[static_cast<size_t>(p.node)];
      if (producer.outputs.size() == 1 && !producer.name.empty() && g.find_node(producer.name) == p.node) {
        EXPECT_EQ(resolve_cut(g, producer.name), std::vector<std::string>{p.tensor});
      }
      ir::Graph h = head(g, {p.tensor}), t = tail(g, {p.tensor});
      EXPECT_EQ(h.nodes.size() + t.nodes.size(), g.nodes.size());
      for (ir::Graph* part : {&h, &t}) {
        for (const auto& v : part->inputs) EXPECT_TRUE(complete(part->value(v).shape)) << v;
        for (const auto& v : part->outputs) EXPECT_TRUE(complete(part->value(v).shape)) << v;
        EXPECT_NO_THROW(ir::check(*part));
      }
      const ir::Dim& batch = (*h.value(p.tensor).shape)[0];
      EXPECT_EQ(batch.known(), !dynamic) << "the batch stays symbolic exactly when the model's is";
      exec::Session hs(h), ts(t);
      for (size_t i = 0; i < xs.size(); ++i) {
        const at::Tensor got = ts.run(hs.run({{g.inputs[0], xs[i]}})).at(g.outputs[0]);
        EXPECT_LE((got - wants[i]).abs().max().item<double>(), 1e-4 * std::max(1.0, wants[i].abs().max().item<double>()))
            << "batch " << xs[i].size(0);
      }
      ++points_checked;
    }
  }
  EXPECT_TRUE(shufflenet) << "ShuffleNet v2 x1.0 (opset 13) is not in the interop set";
  std::printf("%zu models, %zu cut points checked\n", dirs.size(), points_checked);
}

TEST(CutTest, CanonicalMobileNetHead) {
  ir::Graph g = shaped(zoo::mobilenet_v1({}), 1);
  const auto cut = resolve_cut(g, "36");
  EXPECT_EQ(cut, std::vector<std::string>{"conv_pad_6"});
  ir::Graph h = head(g, cut);
  EXPECT_EQ(ir::shape_str(h.value(h.outputs[0]).shape), "(1, 256, 29, 29)");
  EXPECT_EQ(h.nodes.size(), 36u);
  EXPECT_TRUE(h.get_metadata("graft.preprocess").has_value());
  EXPECT_EQ(resolve_cut(g, "conv_pad_6"), cut);
  EXPECT_EQ(resolve_cut(g, "tensor:conv_pad_6"), cut);
}

TEST(CutTest, CanonicalInceptionResNetV2Advice) {
  ir::Graph g = shaped(zoo::inception_resnet_v2({}), 1);
  const int layer = resolve_layer(g, "activation_157");
  const auto f = frontier(g, layer);
  // In Keras' model.layers order mixed_7a's branches interleave: by row 613 (activation_157)
  // the second and third branches have reached batch_normalization_159 and _162.
  EXPECT_EQ(ir::row_index(g, layer), 613);
  EXPECT_EQ(f, (std::vector<std::string>{"block17_20_ac", "batch_normalization_159", "batch_normalization_162",
                                         "activation_157"}));
  const auto points = cut_points(g);
  const CutPoint* before = nullptr;
  const CutPoint* after = nullptr;
  for (const auto& p : points) {
    if (p.node <= layer) before = &p;
    if (p.node > layer && !after) after = &p;
  }
  ASSERT_TRUE(before && after);
  EXPECT_EQ(before->tensor, "block17_20_ac");
  EXPECT_EQ(after->tensor, "mixed_7a");
  EXPECT_EQ(before->bytes, 1088 * 17 * 17 * 4);
  EXPECT_EQ(before->macs_before + before->macs_after, after->macs_before + after->macs_after);
  // A tail from activation_157 alone cannot compute the output.
  try {
    tail(g, {"activation_157"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not separate"), std::string::npos) << e.what();
  }
}

TEST(CutTest, BadCutsNameTheCulprit) {
  ir::Graph g = shaped(zoo::mobilenet_v1({}));
  const auto message = testing::error_message;
  EXPECT_NE(message([&] { resolve_cut(g, "nope"); }).find("no layer named 'nope'"), std::string::npos);
  EXPECT_NE(message([&] { resolve_cut(g, "999"); }).find("no layer 999"), std::string::npos);
  EXPECT_NE(message([&] { resolve_cut(g, "0"); }).find("graph input"), std::string::npos);
  EXPECT_NE(message([&] { resolve_cut(g, "tensor:nope"); }).find("'nope'"), std::string::npos);
  EXPECT_NE(message([&] { head(g, {"conv1/kernel"}); }).find("initializer"), std::string::npos);
  EXPECT_NE(message([&] { tail(g, {"input_1"}); }).find("graph input"), std::string::npos);
  EXPECT_NE(message([&] { head(g, {}); }).find("empty"), std::string::npos);
}

}  // namespace
}  // namespace graft::cut

#include "graft/stitch/stitch.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../common/errors.h"
#include "graft/core/error.h"
#include "graft/exec/session.h"
#include "graft/ir/metadata.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/zoo/zoo.h"

namespace graft::stitch {
namespace {

ir::Graph shaped(ir::Graph g) {
  ir::infer_shapes(g);
  return g;
}

const ir::Graph& mobile() {
  static const ir::Graph g = [] {
    zoo::MobileNetV1Options o;
    o.alpha = 0.25;
    o.input = 96;
    o.classes = 10;
    return shaped(zoo::mobilenet_v1(o));
  }();
  return g;
}

const ir::Graph& server() {
  static const ir::Graph g = [] {
    zoo::InceptionResNetV2Options o;
    o.input = 107;
    o.width = 0.25;
    o.repeats = {1, 2, 1};
    o.classes = 10;
    return shaped(zoo::inception_resnet_v2(o));
  }();
  return g;
}

// Runs the hybrid and checks it gives the tail's output shape.
void runs(const ir::Graph& h) {
  exec::Session s(h);
  exec::TensorMap out = s.run({{"input_1", at::rand({2, 3, 96, 96})}});
  EXPECT_EQ(out.at("predictions").sizes(), (std::vector<int64_t>{2, 10}));
  EXPECT_TRUE(at::isfinite(out.at("predictions")).all().item<bool>());
}

TEST(StitchTest, ThreeCutPairsIncludingAMultiTensorFrontier) {
  struct Case {
    const char* head;
    const char* tail;
    const char* adapter;
    size_t branches;
  };
  for (const Case& c : {Case{"36", "mixed_6a", "conv", 1}, Case{"conv_pw_11_relu", "block17_2_ac", "linear", 1},
                        Case{"36", "activation_31", "bottleneck", 4}}) {
    SCOPED_TRACE(std::string(c.head) + " -> " + c.tail);
    Options o;
    o.adapter = c.adapter;
    ir::Graph h = stitch(mobile(), c.head, server(), c.tail, o);
    EXPECT_NO_THROW(ir::check(h));
    runs(h);
    const auto record = nlohmann::json::parse(*h.get_metadata(ir::kMetaCut));
    EXPECT_EQ(record["adapters"].size(), c.branches);
    EXPECT_EQ(record["tail"]["tensors"].size(), c.branches);
    // Only a lone bottleneck moves the split point off the head's output: with two branches the
    // other one crosses too, so the narrow tensor is not a cut of the hybrid.
    const std::string split = record["split_point"];
    if (c.branches > 1) {
      EXPECT_EQ(split, "a/" + record["head"]["tensors"][0].get<std::string>());
    }
    // Only adapter initializers are trainable, and each exists.
    for (const auto& name : ir::metadata_string_list(h, ir::kMetaTrainable)) {
      EXPECT_EQ(name.rfind("adapter", 0), 0u) << name;
      EXPECT_TRUE(h.initializers.count(name)) << name;
    }
  }
}

TEST(StitchTest, MetadataSurvivesSaveAndLoad) {
  Options o;
  o.adapter = "bottleneck";
  ir::Graph h = stitch(mobile(), "36", server(), "mixed_6a", o);
  const std::string path = ::testing::TempDir() + "/hybrid.onnx";
  ir::save(h, path);
  ir::Graph back = ir::load(path);
  for (const char* key : {ir::kMetaCut, ir::kMetaTrainable, ir::kMetaPreprocess, ir::kMetaRole, ir::kMetaConstants}) {
    EXPECT_EQ(back.get_metadata(key), h.get_metadata(key)) << key;
  }
  EXPECT_EQ(back.get_metadata(ir::kMetaRole), "hybrid");
  const auto record = nlohmann::json::parse(*back.get_metadata(ir::kMetaCut));
  const std::string split = record["split_point"];
  EXPECT_EQ(split.rfind("adapter/", 0), 0u) << split;  // the bottleneck's boundary
  EXPECT_TRUE(back.has_value(split));
  EXPECT_EQ(record["head"]["tensors"][0], "conv_pad_6");
}

TEST(StitchTest, StitchedOutputsEqualHeadThenAdapterThenTail) {
  // The hybrid's head is the source model's head, bit for bit: its cut tensor equals model A's.
  ir::Graph h = stitch(mobile(), "36", server(), "mixed_6a", {});
  at::Tensor x = at::rand({1, 3, 96, 96});
  at::Tensor via_hybrid = exec::Session(h).run({{"input_1", x}}, {"a/conv_pad_6"}).at("a/conv_pad_6");
  at::Tensor via_a = exec::Session(mobile()).run({{"input_1", x}}, {"conv_pad_6"}).at("conv_pad_6");
  EXPECT_TRUE(at::equal(via_hybrid, via_a));
}

TEST(StitchTest, BadStitchesAreErrors) {
  const auto message = testing::error_message;
  // The head must end in one tensor.
  EXPECT_NE(message([] { stitch(server(), "activation_31", server(), "mixed_6a", {}); }).find("must end in one tensor"),
            std::string::npos);
  // An impossible adapter spec names alternatives.
  Options o;
  o.adapter = "conv:k=3,s=3,p=1,c=999;bn;relu";
  EXPECT_NE(message([&] { stitch(mobile(), "36", server(), "mixed_6a", o); }).find("alternatives"), std::string::npos);
  o.adapter = "resample";  // channels differ
  EXPECT_NE(message([&] { stitch(mobile(), "36", server(), "mixed_6a", o); }).find("resample"), std::string::npos);
}

}  // namespace
}  // namespace graft::stitch

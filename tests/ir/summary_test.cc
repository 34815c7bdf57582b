#include "graft/ir/summary.h"

#include <gtest/gtest.h>

#include "graft/ir/metadata.h"
#include "graft/ir/shapes.h"
#include "test_graphs.h"

namespace graft::ir {
namespace {

Summary per_image(Graph g) {
  fix_batch(g, 1);
  infer_shapes(g);
  return summarize(g);
}

TEST(SummaryTest, RowsStartWithTheInput) {
  Summary s = per_image(testing::small_convnet());
  ASSERT_EQ(s.rows.size(), 7u);
  EXPECT_EQ(s.rows[0].index, 0);
  EXPECT_EQ(s.rows[0].op_type, "Input");
  EXPECT_EQ(s.rows[1].name, "conv");
  EXPECT_EQ(s.rows[1].index, 1);
  EXPECT_EQ(s.rows[2].inputs_from, std::vector<std::string>{"conv"});
  EXPECT_EQ(s.rows[1].inputs_from, std::vector<std::string>{"x"});
}

TEST(SummaryTest, ParamsFollowKeras) {
  Summary s = per_image(testing::small_convnet());
  EXPECT_EQ(s.rows[1].params, 4 * 3 * 3 * 3 + 4);  // conv weight + bias
  EXPECT_EQ(s.rows[2].params, 16);                 // BN gamma, beta, mean, var
  EXPECT_EQ(s.rows[2].non_trainable, 8);           // moving mean and variance
  EXPECT_EQ(s.rows[6].params, 4 * 10 + 10);
  EXPECT_EQ(s.params, 112 + 16 + 50);
  EXPECT_EQ(s.non_trainable, 8);
  EXPECT_EQ(s.trainable, s.params - 8);
}

TEST(SummaryTest, ConstantsAreNotParameters) {
  Graph g = testing::small_convnet();
  set_metadata_string_list(g, kMetaConstants, {"bn/scale"});
  Summary s = per_image(g);
  EXPECT_EQ(s.rows[2].params, 12);
}

TEST(SummaryTest, SharedInitializerCountsOnce) {
  Graph g = testing::small_convnet();
  g.nodes.push_back(testing::make_node("fc2", "Gemm", {"f", "fc/w", "fc/b"}, {"y2"}));
  g.outputs.push_back("y2");
  g.reindex();
  Summary s = per_image(g);
  EXPECT_EQ(s.rows.back().params, 0);
  EXPECT_EQ(s.params, 112 + 16 + 50);
}

TEST(SummaryTest, MacsOfConvAndGemm) {
  Summary s = per_image(testing::small_convnet());
  EXPECT_EQ(*s.rows[1].macs, 4 * 8 * 8 * (3 * 3 * 3));
  EXPECT_EQ(*s.rows[6].macs, 10 * 4);
  EXPECT_EQ(*s.rows[3].macs, 0);
  EXPECT_EQ(s.macs, 4 * 8 * 8 * 27 + 40);
}

TEST(SummaryTest, UnknownShapesGiveUnknownMacs) {
  Graph g = testing::small_convnet();
  g.nodes[3].op_type = "MysteryPool";
  g.nodes[3].domain = "com.example";
  g.opset_imports.push_back({"com.example", 1});
  g.reindex();
  Summary s = per_image(g);
  EXPECT_FALSE(s.rows[4].macs.has_value());  // an op ONNX does not know could do anything
  EXPECT_FALSE(s.rows[6].macs.has_value());  // the Gemm after it has no input shape
  EXPECT_EQ(*s.rows[1].macs, 4 * 8 * 8 * 27);
  EXPECT_EQ(s.nodes_with_unknown_macs, 2);
}

}  // namespace
}  // namespace graft::ir

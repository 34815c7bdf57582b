#include "graft/ir/shapes.h"

#include <gtest/gtest.h>

#include "graft/core/error.h"
#include "test_graphs.h"

namespace graft::ir {
namespace {

using testing::make_node;

TEST(ShapesTest, InfersEveryValueWithSymbolicBatch) {
  Graph g = testing::small_convnet();
  infer_shapes(g);
  EXPECT_EQ(shape_str(g.value("c").shape), "(N, 4, 8, 8)");
  EXPECT_EQ(shape_str(g.value("p").shape), "(N, 4, 1, 1)");
  EXPECT_EQ(shape_str(g.value("f").shape), "(N, 4)");
  EXPECT_EQ(shape_str(g.value("y").shape), "(N, 10)");
  EXPECT_EQ(g.value("y").dtype, kFloat);
}

TEST(ShapesTest, FixBatchAndInputShapes) {
  Graph g = testing::small_convnet();
  fix_batch(g, 1);
  infer_shapes(g);
  EXPECT_EQ(shape_str(g.value("y").shape), "(1, 10)");
  set_input_shapes(g, {parse_input_shape("x=2x3x16x16")});
  infer_shapes(g);
  EXPECT_EQ(shape_str(g.value("c").shape), "(2, 4, 16, 16)");
  EXPECT_EQ(shape_str(g.value("y").shape), "(2, 10)");
}

TEST(ShapesTest, DataPropagationResolvesShapeChains) {
  // y = Reshape(x, Concat(Gather(Shape(x), [0]), [-1])): (N, C*H*W) once N is known.
  // (ONNX 1.12 propagates shape data into Reshape from opset 14 on.)
  Graph g;
  g.opset_imports = {{"", 15}};
  g.inputs = {"x"};
  testing::declare(g, "x", {2, 3, 4, 5});
  g.initializers["index0"] = at::zeros({1}, at::kLong);
  g.initializers["minus1"] = at::tensor(std::vector<int64_t>{-1});
  g.nodes.push_back(make_node("shape", "Shape", {"x"}, {"s"}));
  g.nodes.push_back(make_node("gather", "Gather", {"s", "index0"}, {"n1"}));
  Node cat = make_node("cat", "Concat", {"n1", "minus1"}, {"target"});
  cat.attributes.set(Attribute::of_int("axis", 0));
  g.nodes.push_back(cat);
  g.nodes.push_back(make_node("reshape", "Reshape", {"x", "target"}, {"y"}));
  g.outputs = {"y"};
  testing::declare(g, "y", {}, kFloat);
  g.values["y"].shape.reset();
  g.reindex();
  infer_shapes(g);
  EXPECT_EQ(shape_str(g.value("y").shape), "(2, 60)");
}

TEST(ShapesTest, UnknownOpLeavesItsOutputsUnknown) {
  Graph g = testing::small_convnet();
  g.nodes[2].op_type = "FancyActivation";
  g.nodes[2].domain = "com.example";
  g.opset_imports.push_back({"com.example", 1});
  g.reindex();
  EXPECT_NO_THROW(infer_shapes(g));
  EXPECT_EQ(shape_str(g.value("b").shape), "(N, 4, 8, 8)");
  EXPECT_FALSE(g.value("r").shape.has_value());
}

TEST(ShapesTest, ParseInputShape) {
  auto s = parse_input_shape("1x3x224x224");
  EXPECT_EQ(s.name, "");
  EXPECT_EQ(s.dims, (std::vector<int64_t>{1, 3, 224, 224}));
  auto named = parse_input_shape("input_1=8x1x28x28");
  EXPECT_EQ(named.name, "input_1");
  EXPECT_EQ(named.dims, (std::vector<int64_t>{8, 1, 28, 28}));
  for (const char* bad : {"", "1x", "x3", "1xax3", "0x3", "-1x3", "name="}) {
    EXPECT_THROW(parse_input_shape(bad), Error) << bad;
  }
}

TEST(ShapesTest, InputShapeErrorsNameTheInput) {
  Graph g = testing::small_convnet();
  EXPECT_THROW(set_input_shapes(g, {parse_input_shape("nope=1x3x8x8")}), Error);
  try {
    set_input_shapes(g, {parse_input_shape("1x3x8")});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 'x' has rank 4"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace graft::ir

#include "graft/ir/graph.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "graft/core/error.h"
#include "test_graphs.h"

namespace graft::ir {
namespace {

using testing::make_node;
using testing::small_convnet;

std::vector<std::string> node_names(const Graph& g) {
  std::vector<std::string> names;
  for (const auto& n : g.nodes) names.push_back(n.name);
  return names;
}

TEST(GraphTest, ReindexLinksProducersAndConsumers) {
  Graph g = small_convnet();
  EXPECT_EQ(g.value("c").producer, g.find_node("conv"));
  EXPECT_EQ(g.value("c").consumers, std::vector<int>{g.find_node("bn")});
  EXPECT_TRUE(g.value("x").is_graph_input);
  EXPECT_TRUE(g.value("conv/w").is_initializer);
  EXPECT_TRUE(g.value("y").is_graph_output);
  EXPECT_EQ(g.value("x").producer, -1);
}

TEST(GraphTest, SortedGraphKeepsItsOrder) {
  Graph g = small_convnet();
  const auto before = node_names(g);
  g.reindex();
  EXPECT_EQ(node_names(g), before);
}

TEST(GraphTest, OutOfOrderNodesAreSortedTopologically) {
  Graph g = small_convnet();
  std::reverse(g.nodes.begin(), g.nodes.end());
  g.reindex();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"conv", "bn", "relu", "gap", "flat", "fc"}));
  EXPECT_EQ(g.value("r").producer, g.find_node("relu"));
}

TEST(GraphTest, SortIsStableAmongIndependentBranches) {
  Graph g;
  g.inputs = {"x"};
  g.nodes.push_back(make_node("join", "Add", {"a", "b"}, {"y"}));
  g.nodes.push_back(make_node("b", "Relu", {"x"}, {"b"}));
  g.nodes.push_back(make_node("a", "Neg", {"x"}, {"a"}));
  g.outputs = {"y"};
  g.reindex();
  EXPECT_EQ(node_names(g), (std::vector<std::string>{"b", "a", "join"}));
}

TEST(GraphTest, CycleIsAClearError) {
  Graph g;
  g.inputs = {"x"};
  g.nodes.push_back(make_node("n1", "Add", {"x", "c"}, {"a"}));
  g.nodes.push_back(make_node("n2", "Relu", {"a"}, {"b"}));
  g.nodes.push_back(make_node("n3", "Relu", {"b"}, {"c"}));
  g.outputs = {"c"};
  try {
    g.reindex();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
    EXPECT_NE(msg.find("n1"), std::string::npos) << msg;
  }
}

TEST(GraphTest, UndefinedInputNamesTheNode) {
  Graph g = small_convnet();
  g.nodes[2].inputs = {"nowhere"};
  try {
    g.reindex();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("node 'relu' (Relu) reads 'nowhere'"), std::string::npos)
        << e.what();
  }
}

TEST(GraphTest, DoubleDefinitionIsAnError) {
  Graph g = small_convnet();
  g.nodes[2].outputs = {"c"};
  EXPECT_THROW(g.reindex(), Error);
}

TEST(GraphTest, MissingGraphOutputIsAnError) {
  Graph g = small_convnet();
  g.outputs = {"not_there"};
  EXPECT_THROW(g.reindex(), Error);
}

TEST(GraphTest, EqualGraphsComparesInitializerBytes) {
  Graph a = small_convnet();
  Graph b = small_convnet();
  EXPECT_TRUE(equal_graphs(a, b));
  b.initializers["fc/b"] = b.initializers["fc/b"].clone();
  b.initializers["fc/b"].data_ptr<float>()[3] = 1.0f;
  std::string why;
  EXPECT_FALSE(equal_graphs(a, b, &why));
  EXPECT_EQ(why, "initializer 'fc/b'");
}

TEST(GraphTest, MetadataHelpers) {
  Graph g = small_convnet();
  EXPECT_EQ(g.get_metadata("author"), "test");
  g.set_metadata("author", "other");
  g.set_metadata("new", "1");
  EXPECT_EQ(g.get_metadata("author"), "other");
  EXPECT_EQ(g.metadata.size(), 3u);
  g.erase_metadata("new");
  EXPECT_FALSE(g.get_metadata("new").has_value());
}

TEST(GraphTest, ShapeStr) {
  EXPECT_EQ(shape_str(Shape{Dim(std::string("N")), 256, 29, Dim()}), "(N, 256, 29, ?)");
  EXPECT_EQ(shape_str(std::nullopt), "?");
  EXPECT_EQ(known_sizes(Shape{1, 2}), (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(known_sizes(Shape{Dim(std::string("N")), 2}).has_value());
}

}  // namespace
}  // namespace graft::ir

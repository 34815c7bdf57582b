// The zoo models against tf.keras' layer tables (tests/data/keras_*.tsv): every Keras layer is
// a summary row of the same name, index, output shape and parameter counts.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "graft/core/error.h"
#include "graft/ir/onnx_io.h"
#include "graft/ir/shapes.h"
#include "graft/ir/summary.h"
#include "graft/zoo/zoo.h"

namespace graft::zoo {
namespace {

struct KerasLayer {
  int index;
  std::string name, type;
  std::vector<int64_t> hwc;
  int64_t params, non_trainable;
};

std::vector<KerasLayer> read_table(const std::string& file) {
  std::ifstream in(std::string(GRAFT_TEST_DATA) + "/" + file);
  EXPECT_TRUE(in) << file;
  std::vector<KerasLayer> layers;
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    KerasLayer l;
    std::string shape;
    f >> l.index >> l.name >> l.type >> shape >> l.params >> l.non_trainable;
    std::istringstream s(shape);
    for (std::string d; std::getline(s, d, 'x');) l.hwc.push_back(std::stoll(d));
    layers.push_back(l);
  }
  return layers;
}

// Keras' (H, W, C) as graft's NCHW with batch 1; (C) stays (1, C).
std::string nchw(const std::vector<int64_t>& hwc) {
  ir::Shape s{1};
  if (hwc.size() == 3) {
    s.insert(s.end(), {hwc[2], hwc[0], hwc[1]});
  } else {
    s.insert(s.end(), hwc.begin(), hwc.end());
  }
  return ir::shape_str(s);
}

struct Compared {
  int64_t params = 0, non_trainable = 0;
};

// Compares every layer; returns the summary for further checks.
ir::Summary compare(ir::Graph g, const std::vector<KerasLayer>& table, bool same_indices) {
  ir::fix_batch(g, 1);
  ir::infer_shapes(g);
  ir::Summary s = ir::summarize(g);
  std::map<std::string, const ir::SummaryRow*> by_name;
  std::map<std::string, Compared> by_layer;  // "<layer>" and "<layer>/..." rows summed
  for (const auto& r : s.rows) {
    by_name[r.name] = &r;
    const std::string layer = r.name.substr(0, r.name.find('/'));
    by_layer[layer].params += r.params;
    by_layer[layer].non_trainable += r.non_trainable;
  }
  for (const auto& l : table) {
    auto it = by_name.find(l.name);
    if (l.index == 0) {  // InputLayer
      EXPECT_EQ(s.rows[0].index, 0);
      EXPECT_EQ(ir::shape_str(s.rows[0].output_shapes[0]), nchw(l.hwc));
      continue;
    }
    if (it == by_name.end()) {
      ADD_FAILURE() << "no node named " << l.name;
      continue;
    }
    const ir::SummaryRow& r = *it->second;
    EXPECT_EQ(ir::shape_str(r.output_shapes[0]), nchw(l.hwc)) << l.name;
    EXPECT_EQ(by_layer[l.name].params, l.params) << l.name;
    EXPECT_EQ(by_layer[l.name].non_trainable, l.non_trainable) << l.name;
    if (same_indices) {
      EXPECT_EQ(r.index, l.index) << l.name;
    }
  }
  return s;
}

TEST(KerasReferenceTest, MobileNetMatchesKerasLayerByLayer) {
  const auto table = read_table("keras_mobilenet_224.tsv");
  ASSERT_EQ(table.size(), 91u);
  ir::Graph g = mobilenet_v1({});
  EXPECT_EQ(g.nodes.size() + 1, table.size());  // one node per Keras layer
  ir::Summary s = compare(g, table, /*same_indices=*/true);
  EXPECT_EQ(s.params, 4253864);
  EXPECT_EQ(s.non_trainable, 21888);
  EXPECT_EQ(s.rows[36].name, "conv_pad_6");
  EXPECT_EQ(ir::shape_str(s.rows[36].output_shapes[0]), "(1, 256, 29, 29)");
}

// Every index too: rows follow Keras' model.layers (depth-sorted, so branches interleave: row
// 610 is batch_normalization_157, 611 batch_normalization_159), and the two-node layers (the
// scaled residuals, the softmax Dense) keep one row each.
TEST(KerasReferenceTest, InceptionResNetV2MatchesKerasLayerByLayer) {
  const auto table = read_table("keras_inception_resnet_v2_299.tsv");
  ASSERT_EQ(table.size(), 782u);
  ir::Graph g = inception_resnet_v2({});
  ir::Summary s = compare(g, table, /*same_indices=*/true);
  EXPECT_EQ(s.rows.size(), table.size());
  EXPECT_EQ(s.params, 55873736);
  EXPECT_EQ(s.non_trainable, 60544);
  EXPECT_EQ(s.rows[610].name, "batch_normalization_157");
  EXPECT_EQ(s.rows[611].name, "batch_normalization_159");
}

TEST(KerasReferenceTest, InceptionResNetV2CanonicalTensors) {
  ir::Graph g = inception_resnet_v2({});
  ir::fix_batch(g, 1);
  ir::infer_shapes(g);
  EXPECT_EQ(ir::shape_str(g.value("mixed_7a").shape), "(1, 2080, 8, 8)");
  EXPECT_EQ(ir::shape_str(g.value("block17_20_ac").shape), "(1, 1088, 17, 17)");
  EXPECT_EQ(ir::shape_str(g.value("activation_157").shape), "(1, 384, 8, 8)");
  EXPECT_EQ(ir::shape_str(g.value("batch_normalization_159").shape), "(1, 288, 8, 8)");
}

TEST(KerasReferenceTest, ModelsRoundTripAndPassTheChecker) {
  const std::string path = ::testing::TempDir() + "/zoo_roundtrip.onnx";
  MobileNetV1Options mo;
  mo.alpha = 0.25;
  mo.input = 96;
  mo.channels = 1;
  mo.classes = 10;
  InceptionResNetV2Options io;
  io.input = 75;
  io.width = 0.25;
  io.repeats = {1, 2, 1};
  io.classes = 10;
  for (const ir::Graph& g : {mobilenet_v1(mo), inception_resnet_v2(io)}) {
    ir::save(g, path);
    ir::Graph back = ir::load(path);
    std::string why;
    EXPECT_TRUE(ir::equal_graphs(g, back, &why)) << g.name << ": " << why;
    EXPECT_NO_THROW(ir::check(back)) << g.name;
    EXPECT_TRUE(back.get_metadata("graft.preprocess").has_value());
  }
}

TEST(KerasReferenceTest, SmallVariantsHaveConsistentShapes) {
  InceptionResNetV2Options o;
  o.input = 75;
  o.width = 0.25;
  o.repeats = {1, 1, 1};
  o.channels = 1;
  o.classes = 10;
  ir::Graph g = inception_resnet_v2(o);
  ir::fix_batch(g, 1);
  ir::infer_shapes(g);
  EXPECT_EQ(ir::shape_str(g.value("predictions").shape), "(1, 10)");
  EXPECT_EQ(ir::shape_str(g.value("mixed_7a").shape), "(1, 520, 1, 1)");  // 2080/4 at 75 px
  EXPECT_TRUE(g.has_value("block8_1"));
  EXPECT_FALSE(g.has_value("block8_1_ac"));  // the last block8 is not activated

  MobileNetV1Options m;
  m.alpha = 0.25;
  m.include_top = false;
  m.input = 32;
  ir::Graph mg = mobilenet_v1(m);
  EXPECT_EQ(mg.outputs, std::vector<std::string>{"conv_pw_13_relu"});
}

TEST(KerasReferenceTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  MobileNetV1Options o;
  o.alpha = 0.25;
  o.input = 32;
  o.seed = 7;
  ir::Graph a = mobilenet_v1(o), b = mobilenet_v1(o);
  EXPECT_TRUE(ir::equal_graphs(a, b));
  o.seed = 8;
  EXPECT_FALSE(ir::equal_graphs(a, mobilenet_v1(o)));
}

TEST(KerasReferenceTest, BadOptionsAreErrors) {
  MobileNetV1Options m;
  m.alpha = 0.3;
  EXPECT_THROW(mobilenet_v1(m), Error);
  m.alpha = 1.0;
  m.input = 31;
  EXPECT_THROW(mobilenet_v1(m), Error);
  InceptionResNetV2Options i;
  i.input = 74;
  EXPECT_THROW(inception_resnet_v2(i), Error);
  i.input = 299;
  i.repeats = {1, 1, 0};
  EXPECT_THROW(inception_resnet_v2(i), Error);
}

}  // namespace
}  // namespace graft::zoo

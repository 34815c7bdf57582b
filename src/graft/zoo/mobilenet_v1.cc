// MobileNet v1 as tf.keras.applications.MobileNet (TF 2.x) builds it: one ONNX node per Keras
// layer, same names and order. ReLU6 is Clip(0, 6), DepthwiseConv2D a grouped Conv,
// ZeroPadding2D a Pad.
#include <string>

#include "graft/core/error.h"
#include "graft/keras/builder.h"
#include "graft/zoo/preprocess.h"
#include "graft/zoo/zoo.h"

namespace graft::zoo {

using keras::Act;
using keras::Builder;
using keras::Padding;
using keras::Size2;
namespace {

struct BlockSpec {
  int64_t filters;
  int64_t stride;
};
// conv_dw_1 … conv_dw_13: pointwise filters (before alpha) and depthwise stride.
constexpr BlockSpec kBlocks[] = {{64, 1},  {128, 2}, {128, 1}, {256, 2}, {256, 1},
                                 {512, 2}, {512, 1}, {512, 1}, {512, 1}, {512, 1},
                                 {512, 1}, {1024, 2}, {1024, 1}};

Act depthwise_block(Builder& b, const Act& in, int64_t filters, int64_t stride, int id) {
  const std::string n = std::to_string(id);
  Act x = in;
  if (stride != 1) x = b.zero_padding2d(x, 0, 1, 0, 1, "conv_pad_" + n);
  x = b.depthwise_conv2d(x, 3, stride, stride == 1 ? Padding::kSame : Padding::kValid,
                         "conv_dw_" + n);
  x = b.batch_norm(x, true, "conv_dw_" + n + "_bn");
  x = b.relu6(x, "conv_dw_" + n + "_relu");
  x = b.conv2d(x, filters, 1, 1, Padding::kSame, false, "conv_pw_" + n);
  x = b.batch_norm(x, true, "conv_pw_" + n + "_bn");
  return b.relu6(x, "conv_pw_" + n + "_relu");
}

}  // namespace

ir::Graph mobilenet_v1(const MobileNetV1Options& o) {
  if (o.alpha != 0.25 && o.alpha != 0.5 && o.alpha != 0.75 && o.alpha != 1.0) {
    throw Error("mobilenet_v1: --alpha must be 0.25, 0.5, 0.75 or 1.0 (got " +
                std::to_string(o.alpha) + ")");
  }
  if (o.input < 32) throw Error("mobilenet_v1: --input must be at least 32 (got " + std::to_string(o.input) + ")");
  if (o.channels < 1) throw Error("mobilenet_v1: --channels must be at least 1");
  if (o.classes < 1) throw Error("mobilenet_v1: --classes must be at least 1");

  Builder b("mobilenet_v1", o.seed);
  Act x = b.input("input_1", o.channels, o.input, o.input);
  x = b.conv2d(x, static_cast<int64_t>(32 * o.alpha), 3, 2, Padding::kSame, false, "conv1");
  x = b.batch_norm(x, true, "conv1_bn");
  x = b.relu6(x, "conv1_relu");
  int id = 1;
  for (const BlockSpec& s : kBlocks) {
    x = depthwise_block(b, x, static_cast<int64_t>(s.filters * o.alpha), s.stride, id++);
  }
  if (o.include_top) {
    x = b.global_average_pooling2d(x, /*keepdims=*/true, "global_average_pooling2d");
    x = b.dropout(x, o.dropout, "dropout");
    x = b.conv2d(x, o.classes, 1, 1, Padding::kSame, true, "conv_preds");
    x = b.flatten(x, "reshape_2");
    x = b.softmax(x, "predictions");
  }
  ir::Graph g = b.finish(x);
  record_metadata(g, o.input, o.channels,
                  {{"name", "mobilenet_v1"}, {"alpha", o.alpha}, {"input", o.input},
                   {"channels", o.channels}, {"classes", o.classes},
                   {"include_top", o.include_top}, {"seed", o.seed}});
  return g;
}

}  // namespace graft::zoo

// Inception-ResNet v2 as tf.keras.applications.InceptionResNetV2 builds it, with the names a
// fresh Keras session gives its unnamed layers, nodes in Keras' model.layers order (by depth,
// not creation: branches interleave). Keras' scaled residual
// Lambda becomes two nodes (Mul "<block>/scale", Add "<block>"); the softmax Dense becomes Gemm
// "predictions/logits" + Softmax "predictions". --width and --repeats make small variants.
#include <cmath>
#include <string>

#include "graft/core/error.h"
#include "graft/keras/builder.h"
#include "graft/keras/keras.h"
#include "graft/zoo/preprocess.h"
#include "graft/zoo/zoo.h"

namespace graft::zoo {

using keras::Act;
using keras::Builder;
using keras::Padding;
using keras::Size2;
namespace {

class InceptionResNet {
 public:
  InceptionResNet(Builder& b, double width) : b_(b), width_(width) {}

  int64_t filters(int64_t f) const {
    return std::max<int64_t>(1, std::llround(static_cast<double>(f) * width_));
  }

  // Keras' conv2d_bn: Conv2D (no bias) + BatchNormalization(scale=False) + ReLU. A named one
  // gets <name>_bn and <name>_ac; unnamed layers are auto-named.
  Act conv_bn(const Act& x, int64_t f, Size2 kernel, Size2 strides = 1,
              Padding padding = Padding::kSame, const std::string& name = "") {
    Act y = b_.conv2d(x, filters(f), kernel, strides, padding, false, name);
    y = b_.batch_norm(y, /*scale=*/false, name.empty() ? "" : name + "_bn");
    return b_.relu(y, name.empty() ? "" : name + "_ac");
  }

  Act block(const Act& x, double scale, const std::string& type, int idx, bool activate) {
    std::vector<Act> branches;
    if (type == "block35") {
      branches.push_back(conv_bn(x, 32, 1));
      Act b1 = conv_bn(x, 32, 1);
      branches.push_back(conv_bn(b1, 32, 3));
      Act b2 = conv_bn(x, 32, 1);
      b2 = conv_bn(b2, 48, 3);
      branches.push_back(conv_bn(b2, 64, 3));
    } else if (type == "block17") {
      branches.push_back(conv_bn(x, 192, 1));
      Act b1 = conv_bn(x, 128, 1);
      b1 = conv_bn(b1, 160, Size2(1, 7));
      branches.push_back(conv_bn(b1, 192, Size2(7, 1)));
    } else {
      branches.push_back(conv_bn(x, 192, 1));
      Act b1 = conv_bn(x, 192, 1);
      b1 = conv_bn(b1, 224, Size2(1, 3));
      branches.push_back(conv_bn(b1, 256, Size2(3, 1)));
    }
    const std::string name = type + "_" + std::to_string(idx);
    Act mixed = b_.concatenate(branches, name + "_mixed");
    // The "up" projection back to x's channels: a biased conv, no BN, no activation.
    Act up = b_.conv2d(mixed, x.c(), 1, 1, Padding::kSame, true, name + "_conv");
    Act y = b_.scaled_residual(x, up, static_cast<float>(scale), name);
    return activate ? b_.relu(y, name + "_ac") : y;
  }

 private:
  Builder& b_;
  double width_;
};

}  // namespace

ir::Graph inception_resnet_v2(const InceptionResNetV2Options& o) {
  if (o.input < 75) throw Error("inception_resnet_v2: --input must be at least 75 (got " + std::to_string(o.input) + ")");
  if (o.channels < 1) throw Error("inception_resnet_v2: --channels must be at least 1");
  if (o.classes < 1) throw Error("inception_resnet_v2: --classes must be at least 1");
  if (!(o.width > 0) || o.width > 4) throw Error("inception_resnet_v2: --width must be in (0, 4]");
  if (o.repeats[0] < 0 || o.repeats[1] < 0 || o.repeats[2] < 1) {
    throw Error("inception_resnet_v2: --repeats A,B,C needs A >= 0, B >= 0 and C >= 1 (the last "
                "block8 is the un-activated block8_C)");
  }

  Builder b("inception_resnet_v2", o.seed);
  InceptionResNet net(b, o.width);
  Act x = b.input("input_1", o.channels, o.input, o.input);

  // Stem.
  x = net.conv_bn(x, 32, 3, 2, Padding::kValid);
  x = net.conv_bn(x, 32, 3, 1, Padding::kValid);
  x = net.conv_bn(x, 64, 3);
  x = b.max_pooling2d(x, 3, 2, Padding::kValid);
  x = net.conv_bn(x, 80, 1, 1, Padding::kValid);
  x = net.conv_bn(x, 192, 3, 1, Padding::kValid);
  x = b.max_pooling2d(x, 3, 2, Padding::kValid);

  // mixed_5b (Inception-A).
  {
    Act b0 = net.conv_bn(x, 96, 1);
    Act b1 = net.conv_bn(x, 48, 1);
    b1 = net.conv_bn(b1, 64, 5);
    Act b2 = net.conv_bn(x, 64, 1);
    b2 = net.conv_bn(b2, 96, 3);
    b2 = net.conv_bn(b2, 96, 3);
    Act bp = b.average_pooling2d(x, 3, 1, Padding::kSame);
    bp = net.conv_bn(bp, 64, 1);
    x = b.concatenate({b0, b1, b2, bp}, "mixed_5b");
  }
  for (int i = 1; i <= o.repeats[0]; ++i) x = net.block(x, 0.17, "block35", i, true);

  // mixed_6a (Reduction-A).
  {
    Act b0 = net.conv_bn(x, 384, 3, 2, Padding::kValid);
    Act b1 = net.conv_bn(x, 256, 1);
    b1 = net.conv_bn(b1, 256, 3);
    b1 = net.conv_bn(b1, 384, 3, 2, Padding::kValid);
    Act bp = b.max_pooling2d(x, 3, 2, Padding::kValid);
    x = b.concatenate({b0, b1, bp}, "mixed_6a");
  }
  for (int i = 1; i <= o.repeats[1]; ++i) x = net.block(x, 0.1, "block17", i, true);

  // mixed_7a (Reduction-B).
  {
    Act b0 = net.conv_bn(x, 256, 1);
    b0 = net.conv_bn(b0, 384, 3, 2, Padding::kValid);
    Act b1 = net.conv_bn(x, 256, 1);
    b1 = net.conv_bn(b1, 288, 3, 2, Padding::kValid);
    Act b2 = net.conv_bn(x, 256, 1);
    b2 = net.conv_bn(b2, 288, 3);
    b2 = net.conv_bn(b2, 320, 3, 2, Padding::kValid);
    Act bp = b.max_pooling2d(x, 3, 2, Padding::kValid);
    x = b.concatenate({b0, b1, b2, bp}, "mixed_7a");
  }
  for (int i = 1; i < o.repeats[2]; ++i) x = net.block(x, 0.2, "block8", i, true);
  x = net.block(x, 1.0, "block8", o.repeats[2], /*activate=*/false);

  x = net.conv_bn(x, 1536, 1, 1, Padding::kSame, "conv_7b");
  if (o.include_top) {
    x = b.global_average_pooling2d(x, /*keepdims=*/false, "avg_pool");
    x = b.dense(x, o.classes, "softmax", /*use_bias=*/true, "predictions");
  }
  ir::Graph g = b.finish(x);
  keras::order_as_keras(g);
  record_metadata(g, o.input, o.channels,
                  {{"name", "inception_resnet_v2"}, {"input", o.input},
                   {"channels", o.channels}, {"classes", o.classes},
                   {"include_top", o.include_top}, {"width", o.width},
                   {"repeats", {o.repeats[0], o.repeats[1], o.repeats[2]}}, {"seed", o.seed}});
  return g;
}

}  // namespace graft::zoo

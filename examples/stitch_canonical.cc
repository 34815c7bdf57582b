// The canonical example in C++: MobileNet's first 36 layers, an adapter, and InceptionResNetV2
// from block17_20_ac on — the stitch that fails when Keras layers are chained in a Sequential.
#include "graft/ir/onnx_io.h"
#include "graft/stitch/stitch.h"

int main() {
  graft::ir::Graph mobile = graft::ir::load("mobilenet.onnx");
  graft::ir::Graph server = graft::ir::load("inception_resnet_v2.onnx");
  graft::ir::Graph hybrid = graft::stitch::stitch(mobile, "conv_pad_6", server, "block17_20_ac", {"conv"});
  graft::ir::save(hybrid, "hybrid.onnx");
}

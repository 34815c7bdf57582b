// graft::adapt — designing the adaptation module between two cut networks.
//
// Given the source tensor's shape (C1, H1, W1) and a target (C2, H2, W2), the designer lists
// candidate adapters, each a short list of layers with every hyperparameter explicit and its
// parameters, MACs and output shape computed (not guessed). Families:
// - conv:       strided convolution(s) + BatchNorm + activation; kernel k, stride s and padding
//               p solve floor((H1 + 2p - k) / s) + 1 = H2; a stack of stride-2 convolutions for
//               large ratios; ConvTranspose or Resize + convolution when H2 > H1 (or when no
//               convolution fits cleanly).
// - linear:     resampling (average pooling or Resize) then a 1x1 convolution C1 -> C2, which
//               least squares can initialise in closed form.
// - bottleneck: an encoder (device side) down to B channels, then a decoder (server side) to
//               C2; the boundary is the split point for deployment.
// - resample:   pooling or Resize only, when C1 == C2.
// The final activation follows the target: Relu or Clip(0, 6) outputs get that activation;
// tensors feeding BatchNormalization or Add (pre-activations) and anything else end linear.
//
// Adapters are written as specs: layers separated by ';', e.g.
//   "conv:k=3,s=4,p=1,c=384;bn;relu6"     "avgpool:k=8,s=3;conv:k=1,c=384"
//   "conv:k=5,s=4,p=2,c=128;bn;relu;split;conv:k=3,p=1,c=384;bn;relu"
// Layer kinds: conv (k|kh,kw  s|sh,sw  p|ph,pw  c  [bias]), convt (… op|oph,opw), bn, relu,
// relu6, avgpool, maxpool (k, s, p), resize (h, w; bilinear), split (bottleneck boundary).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graft/ir/graph.h"

namespace graft::adapt {

struct Shape3 {
  int64_t c = 0, h = 0, w = 0;
  std::string str() const;  // "384x8x8"
  bool operator==(const Shape3& o) const { return c == o.c && h == o.h && w == o.w; }
};

enum class Activation { kNone, kRelu, kRelu6 };

struct Layer {
  enum class Kind { kConv, kConvTranspose, kBatchNorm, kRelu, kRelu6, kAvgPool, kMaxPool, kResize, kSplit };
  Kind kind = Kind::kConv;
  int64_t channels = 0;                     // conv/convt output channels
  int64_t kh = 1, kw = 1, sh = 1, sw = 1;   // kernel and stride
  int64_t ph = 0, pw = 0;                   // symmetric padding
  int64_t oph = 0, opw = 0;                 // convt output padding
  int64_t out_h = 0, out_w = 0;             // resize target
  bool bias = false;                        // conv/convt bias (on when no BatchNorm follows)

  std::string spec() const;
};

struct Adapter {
  std::string family;
  std::vector<Layer> layers;
  Shape3 in, out;
  int64_t params = 0, macs = 0;
  int split_after = -1;  // index of the last device-side layer (bottleneck), else -1
  Shape3 split_shape;    // the tensor crossing the split
  std::string notes;

  std::string spec() const;
};

// What the target tensor wants: its per-image shape and the activation the adapter should end
// with, with the reason.
struct Target {
  Shape3 shape;
  Activation activation = Activation::kNone;
  std::string why;
};

// The target for `tensor` of `graph` (shapes inferred, 4-D): shape and final activation.
Target target_of(const ir::Graph& graph, const std::string& tensor);
// The per-image shape of a 4-D tensor; Error naming it if it is not a known 4-D shape.
Shape3 shape_of(const ir::Graph& graph, const std::string& tensor);

// Kernel/stride/padding for one axis: floor((in + 2p - k) / s) + 1 == out.
struct Ksp {
  int64_t k = 1, s = 1, p = 0;
};
// Every solution with 1 <= k <= 11, 1 <= s <= in, 0 <= p < k, best first: stride nearest the
// ratio in/out, kernel at least the stride (no skipped inputs), odd, small, padding <= k/2.
std::vector<Ksp> solve_conv(int64_t in, int64_t out);

// Fills in/out shapes, params and MACs by walking the layers from `in`; Error naming the layer
// that does not fit (a kernel larger than its padded input, a BatchNorm before any conv, …).
void evaluate(Adapter& adapter, const Shape3& in);

// Candidate adapters from `from` to `to`, best first; `family` ("" for all) filters.
std::vector<Adapter> design(const Shape3& from, const Target& to, const std::string& family = "");

// Parses a spec (syntax errors name the layer) and evaluates it from `from`.
Adapter parse_spec(const std::string& spec, const Shape3& from);
// parse_spec, and the output must be `to`: otherwise an Error that gives the shape it reaches
// and the nearest feasible alternatives as specs.
Adapter validate_spec(const std::string& spec, const Shape3& from, const Target& to);

// The adapter for a --adapter argument: a family name (its best candidate) or a spec.
Adapter choose(const std::string& family_or_spec, const Shape3& from, const Target& to);

// Appends the adapter's nodes to `graph`, reading `input` and writing `output`; node,
// tensor and initializer names start with `prefix`. Weights: He initialisation for
// convolutions followed by ReLU, Glorot otherwise; BatchNorm gamma 1, beta 0, mean 0, var 1.
// Returns the initializers it added; `split_tensor` receives the tensor at the split point (the
// input when there is none).
std::vector<std::string> build(const Adapter& adapter, ir::Graph& graph, const std::string& input,
                               const std::string& output, const std::string& prefix, uint64_t seed,
                               std::string* split_tensor);

}  // namespace graft::adapt

// graft's own kernels for the few loops oneDNN 2.6 runs only on its reference implementation
// or slowly (internal to exec/onednn). Loops over float buffers, threaded with OpenMP (the
// same runtime oneDNN and ATen use here); no ATen or oneDNN types, so this compiles apart from
// them.
#pragma once

#include <cstdint>
#include <limits>

namespace graft::exec::onednn {

// y[p, c] = x[p * x_stride + c] * scale[c] + shift[c] (then max(., 0) when `relu`), for
// `pixels` pixels of `channels` channels: an nhwc tensor whose pixels may be rows of a wider
// buffer (x_stride >= channels), written dense.
void scale_shift(const float* x, int64_t x_stride, float* y, int64_t pixels, int64_t channels,
                 const float* scale, const float* shift, bool relu);

// x[i] = x[i] * sigmoid(x[i]) for n floats (SiLU, in place). oneDNN 2.6's swish, as a step or
// a convolution's post-op, takes ~1.2 cycles a value on AVX-512 (as long as the convolution
// itself on EfficientNet's expansions); this one half that. fast_silu(): whether it has its
// AVX-512 kernel here (else a plain loop, slower than oneDNN's).
bool fast_silu();
void silu_in_place(float* x, int64_t n);

// The activation graft's own kernels apply after the bias: max(x, 0) + slope * min(x, 0)
// (Relu, LeakyRelu), x * relu6(x + 3) / 6 (HardSwish), x * sigmoid(x) (SiLU) or nothing, then
// a clamp to [lo, hi] (Clip; infinite bounds by default).
struct Epilogue {
  enum Kind { kLinear, kRelu, kHardSwish, kSilu } kind = kLinear;
  float slope = 0.f, lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
};

// Winograd F(2x2, 3x3) for a 3x3, stride-1, pad-1 convolution on nhwc tensors, in three
// steps: winograd_input transforms each 4x4 input patch (a 2x2 output tile and its border) to
// v[16][tiles][channels]; a batched matrix product (oneDNN's matmul) multiplies v[k] by the
// transformed weights u[k] ([channels][out_channels], winograd_weights) into m[16][tiles][out];
// winograd_output transforms each tile back to its 2x2 outputs, adds the bias, then applies
// the epilogue. Tiles run over the batch, then rows, then columns: ceil(h / 2) x ceil(w / 2)
// per sample. Only with AVX-512 (fast_winograd()).
bool fast_winograd();
int64_t winograd_tiles(int64_t batch, int64_t h, int64_t w);
void winograd_weights(const float* w, int64_t out_channels, int64_t channels, float* u);
void winograd_input(const float* x, int64_t batch, int64_t h, int64_t w, int64_t channels, float* v);
void winograd_output(const float* m, int64_t batch, int64_t h, int64_t w, int64_t out_channels, const float* bias,
                     const Epilogue& e, float* y);

// A depthwise convolution (one k x k filter per channel, k 3, 5 or 7, stride 1 or 2, no
// dilation) on nhwc tensors, with its bias and activation: oneDNN 2.6's nhwc kernel for it
// (brdgmm_dw) runs 5x5 and 7x7 filters at batch 1 well below the FMA rate (in MNASNet, 120
// channels 5x5 at 28x28: 0.032 ms against 0.024 here). The threads split the output rows (a
// sample, then its rows, then 16-channel vectors), as the convolution that wrote the input
// did, so each mostly reads what is already in its own L2 (split by channel vectors instead,
// the same kernel took 0.068 ms on MNASNet's 72-channel 5x5 at 56x56 against 0.019). A row
// runs in blocks of up to 8 output pixels whose input columns are loaded once per filter row
// and reused by every tap. Only with AVX-512 (fast_depthwise()).
struct DepthwiseShape {
  int64_t batch = 0, h = 0, w = 0, channels = 0;  // input
  int64_t kernel = 0, stride = 1, pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;  // any bottom / right padding is implied by these
};
bool fast_depthwise();
bool depthwise_kernel_supported(int64_t kernel, int64_t stride);
// ONNX weights [channels][1][k][k] -> [k][k][channels].
void depthwise_weights(const float* w, int64_t channels, int64_t kernel, float* packed);
void depthwise(const float* x, const DepthwiseShape& s, const float* packed, const float* bias, const Epilogue& e,
               float* y);

// A grouped convolution whose groups are 16 channels in and 16 out (RegNet's), k x k (k 3),
// stride 1 or 2, no dilation, on nhwc tensors (`s.channels`: all of them), with its bias and
// activation. oneDNN 2.6's nhwc kernel for it runs RegNetX-400MF's first one (32 channels in
// two groups, stride 2, 112x112) at batch 8 in 1.7 ms, ONNX Runtime's in 0.86. Work is split
// as in depthwise() (sample, output row, group); each output pixel's 16 channels are one
// vector, each input channel a broadcast: 16 x k x k FMAs per pixel and group. Only with
// AVX-512 (fast_depthwise()).
bool grouped16_kernel_supported(int64_t kernel, int64_t stride);
// ONNX weights [groups * 16][16][k][k] -> [groups][k][k][16 in][16 out].
void grouped16_weights(const float* w, int64_t groups, int64_t kernel, float* packed);
void grouped16(const float* x, const DepthwiseShape& s, const float* packed, const float* bias, const Epilogue& e,
               float* y);

}  // namespace graft::exec::onednn

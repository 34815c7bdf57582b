// graft's own kernels for the few loops oneDNN 2.6 runs only on its reference implementation
// or slowly (internal to exec/onednn). Loops over float buffers, threaded with OpenMP (the
// same runtime oneDNN and ATen use here); no ATen or oneDNN types, so this compiles apart from
// them.
#pragma once

#include <cstdint>

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

}  // namespace graft::exec::onednn

// graft's own kernels (native.h).
#include "graft/exec/onednn/native.h"

#include <algorithm>

namespace graft::exec::onednn {
namespace {

// One pixel's channels. Cloned per ISA: the loop is memory-bound only once it is vectorised.
__attribute__((target_clones("avx512f", "avx2", "default"))) void scale_shift_row(
    const float* __restrict x, float* __restrict y, const float* __restrict s, const float* __restrict t,
    int64_t channels, bool relu) {
  if (relu) {
    for (int64_t c = 0; c < channels; ++c) y[c] = std::max(x[c] * s[c] + t[c], 0.f);
  } else {
    for (int64_t c = 0; c < channels; ++c) y[c] = x[c] * s[c] + t[c];
  }
}

}  // namespace

void scale_shift(const float* x, int64_t x_stride, float* y, int64_t pixels, int64_t channels,
                 const float* scale, const float* shift, bool relu) {
  // One thread for less than about 64 KiB of output: below that the fork costs more.
  const bool parallel = pixels * channels >= 16384;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t p = 0; p < pixels; ++p) {
    scale_shift_row(x + p * x_stride, y + p * channels, scale, shift, channels, relu);
  }
}

}  // namespace graft::exec::onednn

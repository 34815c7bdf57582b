// graft's own kernels (native.h).
#include "graft/exec/onednn/native.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

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

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_ps (GCC
// bug 105593, fixed in 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// x * sigmoid(x) for 16 floats: exp(-x) by Cody-Waite range reduction (n = round(-x log2 e),
// r = -x - n ln 2 in two parts) and a degree-6 polynomial for exp(r) on [-ln2/2, ln2/2], scaled
// by 2^n with vscalefps; then one division. -x is clamped to [-87.3, 88.3] (exp stays finite);
// a NaN input gives NaN. Measured against double-precision x / (1 + exp(-x)) over [-20, 20]:
// 1.2e-7 relative, 1.3e-6 absolute at most.
__attribute__((target("avx512f"))) inline __m512 silu16(__m512 x) {
  const __m512 nx = _mm512_min_ps(
      _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), x), _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(nx, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), nx);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  const __m512 e = _mm512_scalef_ps(p, n);
  return _mm512_div_ps(x, _mm512_add_ps(e, _mm512_set1_ps(1.f)));
}

__attribute__((target("avx512f"))) void silu_avx512(float* x, int64_t n) {
  constexpr int64_t kChunk = 1024;  // floats per iteration: 4 KiB
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n >= 32768)
  for (int64_t c = 0; c < chunks; ++c) {
    float* p = x + c * kChunk;
    const int64_t m = std::min(kChunk, n - c * kChunk);
    int64_t i = 0;
    for (; i + 16 <= m; i += 16) _mm512_storeu_ps(p + i, silu16(_mm512_loadu_ps(p + i)));
    if (i < m) {
      const __mmask16 k = static_cast<__mmask16>((1u << (m - i)) - 1);
      _mm512_mask_storeu_ps(p + i, k, silu16(_mm512_maskz_loadu_ps(k, p + i)));
    }
  }
}

#pragma GCC diagnostic pop

}  // namespace

bool fast_silu() { return __builtin_cpu_supports("avx512f"); }

void silu_in_place(float* x, int64_t n) {
  if (fast_silu()) {
    silu_avx512(x, n);
    return;
  }
#pragma omp parallel for schedule(static) if (n >= 32768)
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.f + std::exp(-x[i]));
}

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

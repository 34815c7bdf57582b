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
// bug 105593, fixed in 13), as -Wuninitialized where they are inlined into templates.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// The lanes of a vector holding the `left` remaining floats (all 16 when >= 16).
inline __mmask16 lanes(int64_t left) {
  return left >= 16 ? __mmask16{0xffff} : static_cast<__mmask16>((1u << left) - 1);
}

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
      const __mmask16 k = lanes(m - i);
      _mm512_mask_storeu_ps(p + i, k, silu16(_mm512_maskz_loadu_ps(k, p + i)));
    }
  }
}

// One tile's input transform, 16 channels at a time: v = B^T d B for each channel's 4x4 patch
// d (rows of B^T: [1 0 -1 0], [0 1 1 0], [0 -1 1 0], [0 1 0 -1]). p[i]: patch pixel i (row-major)
// or nullptr outside the image (zero padding); out[i]: where its v[i] goes.
__attribute__((target("avx512f"))) void winograd_input_tile(const float* const* p, int64_t channels,
                                                           float* const* out) {
  for (int64_t c = 0; c < channels; c += 16) {
    const __mmask16 k = lanes(channels - c);
    __m512 d[16];
    for (int i = 0; i < 16; ++i) d[i] = p[i] != nullptr ? _mm512_maskz_loadu_ps(k, p[i] + c) : _mm512_setzero_ps();
    __m512 t[16];  // B^T d
    for (int j = 0; j < 4; ++j) {
      t[j] = _mm512_sub_ps(d[j], d[8 + j]);
      t[4 + j] = _mm512_add_ps(d[4 + j], d[8 + j]);
      t[8 + j] = _mm512_sub_ps(d[8 + j], d[4 + j]);
      t[12 + j] = _mm512_sub_ps(d[4 + j], d[12 + j]);
    }
    for (int i = 0; i < 4; ++i) {  // (B^T d) B
      const __m512* r = t + 4 * i;
      _mm512_mask_storeu_ps(out[4 * i] + c, k, _mm512_sub_ps(r[0], r[2]));
      _mm512_mask_storeu_ps(out[4 * i + 1] + c, k, _mm512_add_ps(r[1], r[2]));
      _mm512_mask_storeu_ps(out[4 * i + 2] + c, k, _mm512_sub_ps(r[2], r[1]));
      _mm512_mask_storeu_ps(out[4 * i + 3] + c, k, _mm512_sub_ps(r[1], r[3]));
    }
  }
}

// The epilogue on 16 floats (Epilogue).
__attribute__((target("avx512f"))) inline __m512 epilogue16(__m512 v, const Epilogue& e) {
  const __m512 zero = _mm512_setzero_ps();
  switch (e.kind) {
    case Epilogue::kRelu:
      v = _mm512_fmadd_ps(_mm512_set1_ps(e.slope), _mm512_min_ps(v, zero), _mm512_max_ps(v, zero));
      break;
    case Epilogue::kHardSwish: {
      const __m512 g = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, _mm512_set1_ps(3.f)), zero), _mm512_set1_ps(6.f));
      v = _mm512_mul_ps(v, _mm512_mul_ps(g, _mm512_set1_ps(1.f / 6.f)));
      break;
    }
    case Epilogue::kSilu:
      v = silu16(v);
      break;
    case Epilogue::kLinear:
      break;
  }
  return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(e.lo)), _mm512_set1_ps(e.hi));
}

// One tile's output transform: y = A^T m A (rows of A^T: [1 1 1 0], [0 1 -1 -1]) + bias, then
// the activation. m[i]: the tile's products at position i; y[i]: output pixel i of the 2x2
// tile, nullptr outside the image.
__attribute__((target("avx512f"))) void winograd_output_tile(const float* const* m, int64_t channels,
                                                            const float* bias, const Epilogue& e, float* const* y) {
  const __m512 zero = _mm512_setzero_ps();
  for (int64_t c = 0; c < channels; c += 16) {
    const __mmask16 k = lanes(channels - c);
    __m512 s[8];  // A^T m
    for (int j = 0; j < 4; ++j) {
      const __m512 m0 = _mm512_maskz_loadu_ps(k, m[j] + c), m1 = _mm512_maskz_loadu_ps(k, m[4 + j] + c),
                   m2 = _mm512_maskz_loadu_ps(k, m[8 + j] + c), m3 = _mm512_maskz_loadu_ps(k, m[12 + j] + c);
      s[j] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
      s[4 + j] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
    }
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(k, bias + c) : zero;
    for (int i = 0; i < 2; ++i) {
      const __m512* r = s + 4 * i;
      __m512 o[2] = {_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(r[0], r[1]), r[2]), b),
                     _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(r[1], r[2]), r[3]), b)};
      for (int j = 0; j < 2; ++j) {
        if (y[2 * i + j] == nullptr) continue;
        _mm512_mask_storeu_ps(y[2 * i + j] + c, k, epilogue16(o[j], e));
      }
    }
  }
}

// P output pixels of one row, one vector of channels (lanes k): x points at the input row
// block's first pixel (column ix0, which may be outside the image when EDGE), w at the
// channel vector's first tap, y at the first output pixel. Filter rows [ky0, ky1) lie inside
// the image; with EDGE, columns outside it read as zeros.
template <int P, int S, int K, bool EDGE>
__attribute__((target("avx512f"))) void depthwise_block(const float* x, int64_t row_stride, int64_t pixel_stride,
                                                       int64_t ix0, int64_t iw, const float* w, int64_t tap_stride,
                                                       int64_t ky0, int64_t ky1, __m512 bias, __mmask16 k,
                                                       const Epilogue& e, float* y) {
  constexpr int N = (P - 1) * S + K;  // input columns the block reads
  __m512 acc[P];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = bias;
  // Columns outside the image load through an empty mask (no access, zeros).
  __mmask16 column[N];
#pragma GCC unroll 32
  for (int i = 0; i < N; ++i) column[i] = !EDGE || (ix0 + i >= 0 && ix0 + i < iw) ? k : __mmask16{0};
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float* row = x + ky * row_stride;
    const float* wr = w + ky * K * tap_stride;
    __m512 in[N];
#pragma GCC unroll 32
    for (int i = 0; i < N; ++i) in[i] = _mm512_maskz_loadu_ps(column[i], row + i * pixel_stride);
#pragma GCC unroll 8
    for (int kx = 0; kx < K; ++kx) {
      const __m512 wv = _mm512_maskz_loadu_ps(k, wr + kx * tap_stride);
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) acc[p] = _mm512_fmadd_ps(in[p * S + kx], wv, acc[p]);
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) _mm512_mask_storeu_ps(y + p * pixel_stride, k, epilogue16(acc[p], e));
}

template <int S, int K>
__attribute__((target("avx512f"))) void depthwise_avx512(const float* x, const DepthwiseShape& s, const float* w,
                                                        const float* bias, const Epilogue& e, float* y) {
  const int64_t c = s.channels, vectors = (c + 15) / 16, items = s.batch * vectors * s.out_h;
  // Row blocks of nearly equal width, at most 8 (14 -> 7 + 7, not 8 + 4 + 2).
  const int64_t blocks = (s.out_w + 7) / 8, width = (s.out_w + blocks - 1) / blocks;
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t v = item % vectors, oy = (item / vectors) % s.out_h, n = item / (s.out_h * vectors);
    const int64_t c0 = 16 * v, iy0 = oy * s.stride - s.pad_top;
    const int64_t ky0 = std::max<int64_t>(0, -iy0), ky1 = std::min(s.kernel, s.h - iy0);
    const __mmask16 k = lanes(c - c0);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(k, bias + c0) : _mm512_setzero_ps();
    const float* xr = x + ((n * s.h + iy0) * s.w) * c + c0;  // row iy0 (maybe outside: only rows >= ky0 are read)
    float* yr = y + ((n * s.out_h + oy) * s.out_w) * c + c0;
    for (int64_t ox = 0; ox < s.out_w;) {
      const int64_t p = std::min(width, s.out_w - ox), ix0 = ox * S - s.pad_left;
      const bool edge = ix0 < 0 || ix0 + (p - 1) * S + K > s.w;
      const float* xb = xr + ix0 * c;
      float* yb = yr + ox * c;
#define GRAFT_DW_BLOCK(PP)                                                                               \
  case PP:                                                                                               \
    if (edge) {                                                                                          \
      depthwise_block<PP, S, K, true>(xb, s.w * c, c, ix0, s.w, w + c0, c, ky0, ky1, b, k, e, yb);        \
    } else {                                                                                             \
      depthwise_block<PP, S, K, false>(xb, s.w * c, c, ix0, s.w, w + c0, c, ky0, ky1, b, k, e, yb);       \
    }                                                                                                    \
    break;
      switch (p) {
        GRAFT_DW_BLOCK(1)
        GRAFT_DW_BLOCK(2)
        GRAFT_DW_BLOCK(3)
        GRAFT_DW_BLOCK(4)
        GRAFT_DW_BLOCK(5)
        GRAFT_DW_BLOCK(6)
        GRAFT_DW_BLOCK(7)
        GRAFT_DW_BLOCK(8)
      }
#undef GRAFT_DW_BLOCK
      ox += p;
    }
  }
}

// P output pixels of one row and one group of 16 channels: xp[p] points at the input pixel
// (group's first channel) each output pixel reads for the current tap, or at 16 zeros outside
// the image; w at the tap's [16 in][16 out] weights.
template <int P>
__attribute__((target("avx512f"))) inline void grouped16_tap(const float* const* xp, const float* w, __m512* acc) {
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    const __m512 wv = _mm512_loadu_ps(w + 16 * i);
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p) acc[p] = _mm512_fmadd_ps(_mm512_set1_ps(xp[p][i]), wv, acc[p]);
  }
}

template <int P>
__attribute__((target("avx512f"))) void grouped16_block(const float* x, const DepthwiseShape& s, int64_t iy0,
                                                       int64_t ky0, int64_t ky1, int64_t ix0, const float* w,
                                                       __m512 bias, const Epilogue& e, float* y) {
  alignas(64) static const float zeros[16] = {};
  __m512 acc[P];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) acc[p] = bias;
  const int64_t c = s.channels, k = s.kernel;
  for (int64_t ky = ky0; ky < ky1; ++ky) {
    const float* row = x + (iy0 + ky) * s.w * c;
    for (int64_t kx = 0; kx < k; ++kx) {
      const float* xp[P];
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        const int64_t ix = ix0 + p * s.stride + kx;
        xp[p] = ix >= 0 && ix < s.w ? row + ix * c : zeros;
      }
      grouped16_tap<P>(xp, w + (ky * k + kx) * 256, acc);
    }
  }
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + p * c, epilogue16(acc[p], e));
}

__attribute__((target("avx512f"))) void grouped16_avx512(const float* x, const DepthwiseShape& s, const float* w,
                                                        const float* bias, const Epilogue& e, float* y) {
  const int64_t c = s.channels, groups = c / 16, k = s.kernel, items = s.batch * s.out_h * groups;
  const int64_t blocks = (s.out_w + 7) / 8, width = (s.out_w + blocks - 1) / blocks;
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t g = item % groups, oy = (item / groups) % s.out_h, n = item / (s.out_h * groups);
    const int64_t iy0 = oy * s.stride - s.pad_top;
    const int64_t ky0 = std::max<int64_t>(0, -iy0), ky1 = std::min(k, s.h - iy0);
    const __m512 b = bias != nullptr ? _mm512_loadu_ps(bias + 16 * g) : _mm512_setzero_ps();
    const float* xn = x + n * s.h * s.w * c + 16 * g;
    const float* wg = w + g * k * k * 256;
    float* yr = y + ((n * s.out_h + oy) * s.out_w) * c + 16 * g;
    for (int64_t ox = 0; ox < s.out_w;) {
      const int64_t p = std::min(width, s.out_w - ox), ix0 = ox * s.stride - s.pad_left;
      switch (p) {
        case 1: grouped16_block<1>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 2: grouped16_block<2>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 3: grouped16_block<3>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 4: grouped16_block<4>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 5: grouped16_block<5>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 6: grouped16_block<6>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        case 7: grouped16_block<7>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
        default: grouped16_block<8>(xn, s, iy0, ky0, ky1, ix0, wg, b, e, yr + ox * c); break;
      }
      ox += p;
    }
  }
}

void depthwise_dispatch(const float* x, const DepthwiseShape& s, const float* packed, const float* bias,
                        const Epilogue& e, float* y) {
  const int64_t code = s.kernel * 10 + s.stride;
  switch (code) {
    case 31: depthwise_avx512<1, 3>(x, s, packed, bias, e, y); break;
    case 32: depthwise_avx512<2, 3>(x, s, packed, bias, e, y); break;
    case 51: depthwise_avx512<1, 5>(x, s, packed, bias, e, y); break;
    case 52: depthwise_avx512<2, 5>(x, s, packed, bias, e, y); break;
    case 71: depthwise_avx512<1, 7>(x, s, packed, bias, e, y); break;
    case 72: depthwise_avx512<2, 7>(x, s, packed, bias, e, y); break;
    default: break;  // callers check depthwise_kernel_supported()
  }
}

#pragma GCC diagnostic pop

}  // namespace

bool fast_winograd() { return __builtin_cpu_supports("avx512f"); }

int64_t winograd_tiles(int64_t batch, int64_t h, int64_t w) { return batch * ((h + 1) / 2) * ((w + 1) / 2); }

void winograd_weights(const float* w, int64_t out_channels, int64_t channels, float* u) {
  // u = G g G^T for each 3x3 kernel g (rows of G: [1 0 0], [1/2 1/2 1/2], [1/2 -1/2 1/2],
  // [0 0 1]), stored u[position][channel][out_channel].
  for (int64_t o = 0; o < out_channels; ++o) {
    for (int64_t i = 0; i < channels; ++i) {
      const float* g = w + (o * channels + i) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      for (int r = 0; r < 4; ++r) {
        const float row[4] = {t[r][0], 0.5f * (t[r][0] + t[r][1] + t[r][2]), 0.5f * (t[r][0] - t[r][1] + t[r][2]), t[r][2]};
        for (int c = 0; c < 4; ++c) u[((4 * r + c) * channels + i) * out_channels + o] = row[c];
      }
    }
  }
}

void winograd_input(const float* x, int64_t batch, int64_t h, int64_t w, int64_t channels, float* v) {
  const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tiles = winograd_tiles(batch, h, w);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n = t / (th * tw), r0 = 2 * ((t / tw) % th) - 1, c0 = 2 * (t % tw) - 1;
    const float* p[16];
    float* out[16];
    for (int i = 0; i < 16; ++i) {
      const int64_t r = r0 + i / 4, c = c0 + i % 4;
      p[i] = r >= 0 && r < h && c >= 0 && c < w ? x + ((n * h + r) * w + c) * channels : nullptr;
      out[i] = v + (i * tiles + t) * channels;
    }
    winograd_input_tile(p, channels, out);
  }
}

void winograd_output(const float* m, int64_t batch, int64_t h, int64_t w, int64_t out_channels, const float* bias,
                     const Epilogue& e, float* y) {
  const int64_t th = (h + 1) / 2, tw = (w + 1) / 2, tiles = winograd_tiles(batch, h, w);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n = t / (th * tw), r0 = 2 * ((t / tw) % th), c0 = 2 * (t % tw);
    const float* in[16];
    float* out[4];
    for (int i = 0; i < 16; ++i) in[i] = m + (i * tiles + t) * out_channels;
    for (int i = 0; i < 4; ++i) {
      const int64_t r = r0 + i / 2, c = c0 + i % 2;
      out[i] = r < h && c < w ? y + ((n * h + r) * w + c) * out_channels : nullptr;
    }
    winograd_output_tile(in, out_channels, bias, e, out);
  }
}

bool fast_depthwise() { return __builtin_cpu_supports("avx512f"); }

bool depthwise_kernel_supported(int64_t kernel, int64_t stride) {
  return (kernel == 3 || kernel == 5 || kernel == 7) && (stride == 1 || stride == 2);
}

void depthwise_weights(const float* w, int64_t channels, int64_t kernel, float* packed) {
  for (int64_t ch = 0; ch < channels; ++ch) {
    for (int64_t t = 0; t < kernel * kernel; ++t) packed[t * channels + ch] = w[ch * kernel * kernel + t];
  }
}

void depthwise(const float* x, const DepthwiseShape& s, const float* packed, const float* bias, const Epilogue& e,
               float* y) {
  depthwise_dispatch(x, s, packed, bias, e, y);
}

bool grouped16_kernel_supported(int64_t kernel, int64_t stride) { return kernel == 3 && (stride == 1 || stride == 2); }

void grouped16_weights(const float* w, int64_t groups, int64_t kernel, float* packed) {
  const int64_t taps = kernel * kernel;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < 16; ++o) {
      for (int64_t i = 0; i < 16; ++i) {
        for (int64_t t = 0; t < taps; ++t) {
          packed[((g * taps + t) * 16 + i) * 16 + o] = w[((g * 16 + o) * 16 + i) * taps + t];
        }
      }
    }
  }
}

void grouped16(const float* x, const DepthwiseShape& s, const float* packed, const float* bias, const Epilogue& e,
               float* y) {
  grouped16_avx512(x, s, packed, bias, e, y);
}

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

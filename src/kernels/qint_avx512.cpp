// AVX-512 (F/BW/VL + VNNI) traits for the group-wise integer kernels: one step = one 64-weight block,
// vpdpbusd (u8 codes × i8 activations, 4 products summed per i32 lane, no saturation) for every bit
// width. Compiled with the AVX-512 flags; chosen at run time by qint_best_isa().
// GCC 12 warns about its own _mm512_undefined_*() self-initialisation (a known false positive).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/qint_loop.h"

namespace lmp {
namespace {

struct Avx512 {
  using F = __m512;
  using C = __m512i;
  static constexpr int W = 64, STEPS = 1;
  static constexpr int GEMV_ROWS = 4, GEMM_ROWS = 2;  // register blocking (32 zmm)
  template <int B> static constexpr int zero_offset = 0;

  static C lo2(const uint8_t* p) {  // BlockQ2: 128-bit lane k holds bits 2k..2k+1 of each byte
    __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(6, 6, 4, 4, 2, 2, 0, 0)), _mm512_set1_epi8(3));
  }
  template <int B> static C codes(const uint8_t* blk, int) {
    if constexpr (B == 2) {
      return lo2(blk);
    } else if constexpr (B == 3) {
      uint64_t h;
      std::memcpy(&h, blk + 16, 8);
      return _mm512_or_si512(lo2(blk), _mm512_maskz_mov_epi8(__mmask64(h), _mm512_set1_epi8(4)));
    } else if constexpr (B == 4) {
      // Both 256-bit halves hold the 32 bytes; the upper half shifts by 4 (a broadcast load is free).
      __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk)));
      __m512i t = _mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0));
      return _mm512_and_si512(t, _mm512_set1_epi8(15));
    } else {
      return _mm512_loadu_si512(blk);
    }
  }
  template <int B> static F dot(C c, const int8_t* x) {
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), c, _mm512_loadu_si512(x)));
  }
  static F load_d(const float* p) { return _mm512_loadu_ps(p); }
  static F scale_pair(const f16_t* p, bool two) {
    __m128 s = _mm_cvtph_ps(_mm_maskz_loadu_epi16(__mmask8(two ? 3 : 1), p));  // never reads past the row
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
  }
  // zs[t] = Σ_g s_g · (z_g − off) · gs[t][g]; zeros == nullptr → z_g − off = zsym.
  template <int NT>
  static void zero_terms(const f16_t* sc, const uint8_t* zp, float zsym, float off, const float* const* gs, int64_t ng,
                         float* zs) {
    F acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = zero();
    for (int64_t g = 0; g < ng; g += 16) {
      __mmask16 m = ng - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (ng - g)) - 1);
      F s = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, sc + g));
      F z = zp ? _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, zp + g))), bcast(off))
               : bcast(zsym);
      F sz = mul(s, z);
      for (int t = 0; t < NT; t++) acc[t] = fma(sz, _mm512_maskz_loadu_ps(m, gs[t] + g), acc[t]);
    }
    for (int t = 0; t < NT; t++) zs[t] = hsum(acc[t]);
  }
  static F zero() { return _mm512_setzero_ps(); }
  static F bcast(float s) { return _mm512_set1_ps(s); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static float hsum(F v) { return _mm512_reduce_add_ps(v); }
};

}  // namespace

QIntRowsKernel qint_kernel_avx512(int bits) { return qint_detail::kernel_table<Avx512>(bits); }

}  // namespace lmp

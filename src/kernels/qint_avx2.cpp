// AVX2 (x86-64-v3 baseline) traits for the group-wise integer kernels: steps of 32 weights,
// maddubs (u8 codes × i8 activations → i16 pairs) + madd → i32. 8-bit codes exceed maddubs' i16 range
// (2·255·127), so they go in as q − 128 with the sign trick (|a| · sign(b, a)) and zero − 128.
#include <immintrin.h>

#include <cstring>

#include "kernels/qint_loop.h"

namespace lmp {
namespace {

struct Avx2 {
  using F = __m256;
  using C = __m256i;
  static constexpr int W = 32, STEPS = 2;
  static constexpr int GEMV_ROWS = 4, GEMM_ROWS = 1;  // register blocking (16 ymm)
  template <int B> static constexpr int zero_offset = B == 8 ? 128 : 0;

  static C lo2(const uint8_t* p, int st) {  // bits 0..1 of codes 32·st .. 32·st + 31 (BlockQ2 layout)
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    __m256i sh = st == 0 ? _mm256_set_epi64x(2, 2, 0, 0) : _mm256_set_epi64x(6, 6, 4, 4);
    return _mm256_and_si256(_mm256_srlv_epi64(v, sh), _mm256_set1_epi8(3));
  }
  template <int B> static C codes(const uint8_t* blk, int st) {
    if constexpr (B == 2) {
      return lo2(blk, st);
    } else if constexpr (B == 3) {
      uint32_t h;
      std::memcpy(&h, blk + 16 + 4 * st, 4);
      const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
      const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
      __m256i b = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32(int(h)), shuf), bit);
      __m256i hi = _mm256_and_si256(_mm256_cmpeq_epi8(b, bit), _mm256_set1_epi8(4));
      return _mm256_or_si256(lo2(blk, st), hi);
    } else if constexpr (B == 4) {
      __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk));
      if (st) v = _mm256_srli_epi16(v, 4);
      return _mm256_and_si256(v, _mm256_set1_epi8(15));
    } else {
      __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 32 * st));
      return _mm256_xor_si256(v, _mm256_set1_epi8(char(0x80)));  // q − 128 as i8
    }
  }
  template <int B> static F dot(C c, const int8_t* x) {
    __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    __m256i p;
    if constexpr (B == 8)
      p = _mm256_maddubs_epi16(_mm256_sign_epi8(c, c), _mm256_sign_epi8(xv, c));
    else
      p = _mm256_maddubs_epi16(c, xv);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static F load_d(const float* p) { return _mm256_loadu_ps(p); }
  static F scale_pair(const f16_t* p, bool) { return _mm256_set1_ps(f16_to_f32(*p)); }  // unused: W == 32
  // zs[t] = Σ_g s_g · (z_g − off) · gs[t][g]; zeros == nullptr → z_g − off = zsym.
  template <int NT>
  static void zero_terms(const f16_t* sc, const uint8_t* zp, float zsym, float off, const float* const* gs, int64_t ng,
                         float* zs) {
    F acc[NT];
    for (int t = 0; t < NT; t++) acc[t] = zero();
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8) {
      F s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc + g)));
      F z = zp ? _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(
                                   reinterpret_cast<const __m128i*>(zp + g)))),
                               bcast(off))
               : bcast(zsym);
      F sz = mul(s, z);
      for (int t = 0; t < NT; t++) acc[t] = fma(sz, _mm256_loadu_ps(gs[t] + g), acc[t]);
    }
    for (int t = 0; t < NT; t++) zs[t] = hsum(acc[t]);
    for (; g < ng; g++) {
      float sz = f16_to_f32(sc[g]) * (zp ? float(zp[g]) - off : zsym);
      for (int t = 0; t < NT; t++) zs[t] += sz * gs[t][g];
    }
  }
  static F zero() { return _mm256_setzero_ps(); }
  static F bcast(float s) { return _mm256_set1_ps(s); }
  static F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static float hsum(F v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

}  // namespace

QIntRowsKernel qint_kernel_avx2(int bits) { return qint_detail::kernel_table<Avx2>(bits); }

}  // namespace lmp

// AVX-512 VNNI traits for the W8A8 GEMM: one vpdpbusd multiplies a broadcast 4-column activation chunk
// (u8, xq + 128) with a 16-row × 4-column weight chunk (i8) into 16 int32 rows; fix() subtracts the
// precomputed 128 · Σ q. Blocking: 2 panels × 8 tokens (16 accumulators of 32 zmm), 2 × 4 when grouped
// (plus 8 f32 accumulators), 4 panels × 1 token for decode.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cstring>

#include "kernels/w8a8_loop.h"

namespace lmp {
namespace {

struct Avx512 {
  using Acc = __m512i;
  using Wt = __m512i;
  using Xb = __m512i;
  using F = __m512;
  static constexpr bool SHIFTED = true;
  static constexpr int NP = 2, NT = 8, NTG = 4, NP1 = 4;

  static __mmask16 lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }
  static Wt loadw(const int8_t* p) { return _mm512_loadu_si512(p); }
  static Xb bx(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static Acc dot(Acc acc, Wt w, Xb x) { return _mm512_dpbusd_epi32(acc, x, w); }
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc fix(Acc a, const int32_t* corr) { return _mm512_sub_epi32(a, _mm512_loadu_si512(corr)); }
  static void store_i(int32_t* p, Acc v, int n) { _mm512_mask_storeu_epi32(p, lanes(n), v); }
  static F cvt(Acc a) { return _mm512_cvtepi32_ps(a); }
  static F loadf(const float* p) { return _mm512_loadu_ps(p); }
  static F bcast(float s) { return _mm512_set1_ps(s); }
  static F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F zerof() { return _mm512_setzero_ps(); }
  static void storef(float* p, F v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
};

}  // namespace

W8A8PanelsKernel w8a8_kernel_avx512(bool grouped, bool ints) { return w8a8_detail::kernel_table<Avx512>(grouped, ints); }

}  // namespace lmp

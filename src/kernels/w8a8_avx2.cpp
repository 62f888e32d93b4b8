// AVX2 traits for the W8A8 GEMM. A 16-row panel is two ymm halves (rows 0..7, 8..15). maddubs takes u8 × i8
// and saturates its i16 pair sums, so activations go in as sign(xq, q) against |q| (|q|, |xq| ≤ 127: a pair
// is at most 2·127·127 = 32258 < 2^15, exact), then madd with ones widens to i32. No shift, no correction.
// Blocking: 1 panel × 4 tokens (8 accumulators of 16 ymm), 1 × 2 when grouped, 2 panels for decode.
#include <immintrin.h>

#include <cstring>

#include "kernels/w8a8_loop.h"

namespace lmp {
namespace {

struct Avx2 {
  struct Acc {
    __m256i lo, hi;
  };
  struct Wt {
    __m256i lo, hi, alo, ahi;  // codes and |codes|
  };
  using Xb = __m256i;
  struct F {
    __m256 lo, hi;
  };
  static constexpr bool SHIFTED = false;
  static constexpr int NP = 1, NT = 4, NTG = 2, NP1 = 2;

  static Wt loadw(const int8_t* p) {
    __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32));
    return {lo, hi, _mm256_abs_epi8(lo), _mm256_abs_epi8(hi)};
  }
  static Xb bx(const uint8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static __m256i dot1(__m256i acc, __m256i w, __m256i aw, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
  }
  static Acc dot(Acc a, const Wt& w, Xb x) { return {dot1(a.lo, w.lo, w.alo, x), dot1(a.hi, w.hi, w.ahi, x)}; }
  static Acc zero() { return {_mm256_setzero_si256(), _mm256_setzero_si256()}; }
  static Acc fix(Acc a, const int32_t*) { return a; }
  static void store_i(int32_t* p, Acc v, int n) {
    alignas(32) int32_t buf[16];
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), v.lo);
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf + 8), v.hi);
    std::memcpy(p, buf, size_t(n) * 4);
  }
  static F cvt(Acc a) { return {_mm256_cvtepi32_ps(a.lo), _mm256_cvtepi32_ps(a.hi)}; }
  static F loadf(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
  static F bcast(float s) { return {_mm256_set1_ps(s), _mm256_set1_ps(s)}; }
  static F fma(F a, F b, F c) { return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)}; }
  static F mul(F a, F b) { return {_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
  static F zerof() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
  static void storef(float* p, F v, int n) {
    if (n == 16) {
      _mm256_storeu_ps(p, v.lo);
      _mm256_storeu_ps(p + 8, v.hi);
      return;
    }
    alignas(32) float buf[16];
    _mm256_store_ps(buf, v.lo);
    _mm256_store_ps(buf + 8, v.hi);
    std::memcpy(p, buf, size_t(n) * 4);
  }
};

}  // namespace

W8A8PanelsKernel w8a8_kernel_avx2(bool grouped, bool ints) { return w8a8_detail::kernel_table<Avx2>(grouped, ints); }

}  // namespace lmp

// AVX2 GEMV of the SpQR format (kernels/spqr_format.h): 16 codes at a time from the 64-code blocks of
// kernels/qint.h, widened to f32 and multiplied with x; one scale per group, zero terms Σ_g ŝ_g ẑ_g X_g and
// the row's sparse outlier corrections added per row.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/spqr_format.h"

namespace lmp {
namespace {

// Codes 16k .. 16k + 15 (k = 0..3) of a 64-code block, one per byte.
template <int B>
inline __m128i codes16(const uint8_t* blk, int k) {
  if constexpr (B == 4) {  // byte j: low nibble w[j], high nibble w[32 + j]
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * (k & 1)));
    if (k >> 1) v = _mm_srli_epi16(v, 4);
    return _mm_and_si128(v, _mm_set1_epi8(15));
  } else {  // 2-bit plane: byte j, bits 2k..2k+1 hold w[16k + j]
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk));
    __m128i lo = _mm_and_si128(_mm_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), _mm_set1_epi8(3));
    if constexpr (B == 2) return lo;
    uint16_t h;  // 3 bits: bit j of the 64-bit qh word is bit 2 of w[j]
    std::memcpy(&h, blk + 16 + 2 * k, 2);
    const __m128i shuf = _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    const __m128i bit = _mm_set1_epi64x(0x8040201008040201LL);
    __m128i b = _mm_and_si128(_mm_shuffle_epi8(_mm_set1_epi16(short(h)), shuf), bit);
    return _mm_or_si128(lo, _mm_and_si128(_mm_cmpeq_epi8(b, bit), _mm_set1_epi8(4)));
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int B>
void gemv_rows(const SpqrMatrix& m, const float* xp, const float* xg, float* y, int64_t r0, int64_t r1) {
  const int64_t ng = m.ngroups(), cpg = m.layout().group / 16, nch = m.nblk() * 4, rb = m.row_bytes();
  thread_local std::vector<float> sv, zv;
  sv.resize(size_t(ng));
  zv.resize(size_t(ng));
  const int64_t* optr = m.outlier_ptr();
  const uint16_t* ocol = m.outlier_col();
  const float* oval = m.outlier_val();
  for (int64_t r = r0; r < r1; r++) {
    m.row_stats(r, sv.data(), zv.data());
    const uint8_t* rc = m.codes() + r * rb;
    __m256 acc = _mm256_setzero_ps();
    float zt = 0;
    for (int64_t g = 0; g < ng; g++) {
      __m256 ga = _mm256_setzero_ps();
      for (int64_t ch = g * cpg, e = std::min(nch, (g + 1) * cpg); ch < e; ch++) {
        __m128i c = codes16<B>(rc + ch / 4 * 8 * B, int(ch % 4));
        __m256 q0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
        __m256 q1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(c, 8)));
        ga = _mm256_fmadd_ps(q0, _mm256_loadu_ps(xp + ch * 16), ga);
        ga = _mm256_fmadd_ps(q1, _mm256_loadu_ps(xp + ch * 16 + 8), ga);
      }
      acc = _mm256_fmadd_ps(ga, _mm256_set1_ps(sv[size_t(g)]), acc);
      zt += sv[size_t(g)] * zv[size_t(g)] * xg[g];
    }
    float out = hsum(acc) - zt;
    for (int64_t k = optr[r]; k < optr[r + 1]; k++) out += oval[k] * xp[ocol[k]];
    y[r] = out;
  }
}

}  // namespace

void spqr_gemv_avx2(const SpqrMatrix& m, const float* xp, const float* xg, float* y, int64_t r0, int64_t r1) {
  switch (m.layout().bits) {
    case 2: return gemv_rows<2>(m, xp, xg, y, r0, r1);
    case 3: return gemv_rows<3>(m, xp, xg, y, r0, r1);
    default: return gemv_rows<4>(m, xp, xg, y, r0, r1);
  }
}

}  // namespace lmp

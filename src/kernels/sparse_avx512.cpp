// AVX-512 (F/BW/VL) GEMVs of the sparse formats (layouts and math in sparse.h). Compiled with the AVX-512
// flags; called only when sparse_simd_available(). Each computes y[r] = Σ_c W[r][c]·x[c] for rows [r0, r1).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12's _mm512_undefined_* false positive
#include <immintrin.h>

#include <bit>
#include <cstring>

#include "kernels/sparse.h"

namespace lmp {

namespace {

// ---------------------------------------------------------------------------------------------------
// Bitmap: per 16 columns, expand the next popcount(m) packed values into the lanes whose bit is set, load x
// only in those lanes, FMA. Memory traffic = bitmap + kept values.

template <SparseValues V>
inline __m512 expand_values(__mmask16 m, const uint8_t*& p) {
  const int pc = std::popcount(unsigned(m));
  __m512 v;
  if constexpr (V == SparseValues::F32) {
    v = _mm512_maskz_expandloadu_ps(m, p);
  } else {
    __m256i h = _mm256_maskz_loadu_epi16(__mmask16((1u << pc) - 1), p);
    v = _mm512_maskz_expand_ps(m, _mm512_cvtph_ps(h));
  }
  p += pc * value_bytes(V);
  return v;
}

template <SparseValues V>
void bitmap_rows(const SparseBitmap& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const int64_t nw = w.words();
  for (int64_t r = r0; r < r1; r++) {
    const uint64_t* bm = w.bitmap() + r * nw;
    const uint8_t* p = w.values() + w.row_ptr()[r] * value_bytes(V);
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (int64_t k = 0; k < nw; k++) {
      const uint64_t b = bm[k];
      if (!b) continue;
      const float* xk = x + 64 * k;
      const __mmask16 m0 = __mmask16(b), m1 = __mmask16(b >> 16), m2 = __mmask16(b >> 32), m3 = __mmask16(b >> 48);
      a0 = _mm512_fmadd_ps(expand_values<V>(m0, p), _mm512_maskz_loadu_ps(m0, xk), a0);
      a1 = _mm512_fmadd_ps(expand_values<V>(m1, p), _mm512_maskz_loadu_ps(m1, xk + 16), a1);
      a0 = _mm512_fmadd_ps(expand_values<V>(m2, p), _mm512_maskz_loadu_ps(m2, xk + 32), a0);
      a1 = _mm512_fmadd_ps(expand_values<V>(m3, p), _mm512_maskz_loadu_ps(m3, xk + 48), a1);
    }
    y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
  }
}

// ---------------------------------------------------------------------------------------------------
// N:M: a chunk of 16 kept values covers 32 input columns (2:4 and 4:8). Lane k's column inside the window is
//   col_k = (k / N)·M + idx_k,   idx_k = bits [b·k, b·k + b) of the chunk's indices,
// and x[col_k] comes from the two 16-float registers of the window by one vpermt2ps.

template <int N, int M>
struct NmLanes {
  static constexpr int B = M == 4 ? 2 : 3;
  __m512i shifts, base, mask;
  NmLanes() {
    alignas(64) int32_t s[16], bs[16];
    for (int k = 0; k < 16; k++) s[k] = B * (k % 8), bs[k] = k / N * M;
    shifts = _mm512_load_si512(s);
    base = _mm512_load_si512(bs);
    mask = _mm512_set1_epi32((1 << B) - 1);
  }
  // Column offsets (0..31) of the chunk's 16 values.
  __m512i columns(const uint8_t* chunk) const {
    uint64_t bits = 0;
    std::memcpy(&bits, chunk, 2 * B);
    const uint32_t lo = uint32_t(bits & ((1u << (8 * B)) - 1)), hi = uint32_t(bits >> (8 * B));
    __m512i v = _mm512_inserti32x8(_mm512_set1_epi32(int(lo)), _mm256_set1_epi32(int(hi)), 1);
    return _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(v, shifts), mask), base);
  }
  static __m512 gather_x(const float* xw, __m512i cols) {
    return _mm512_permutex2var_ps(_mm512_loadu_ps(xw), cols, _mm512_loadu_ps(xw + 16));
  }
  static int64_t column(const uint8_t* row_idx, int64_t k) {  // scalar, for the ragged tail
    return k / N * M + nm_chunk_index(row_idx + k / kNmChunk * 2 * B, int(k % kNmChunk), B);
  }
};

template <SparseValues V>
inline __m512 load16(const uint8_t* p) {
  if constexpr (V == SparseValues::F32) return _mm512_loadu_ps(p);
  else return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <SparseValues V>
inline float load1(const uint8_t* p) {
  if constexpr (V == SparseValues::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  } else {
    f16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
  }
}

template <int N, int M, SparseValues V>
void nm_rows(const SparseNM& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const NmLanes<N, M> L;
  const int64_t kept = w.kept(), full = kept / kNmChunk, irb = w.index_row_bytes();
  constexpr int VB = V == SparseValues::F32 ? 4 : 2;
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t* vals = w.values() + r * kept * VB;
    const uint8_t* idx = w.indices() + r * irb;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 2 <= full; c += 2) {
      a0 = _mm512_fmadd_ps(load16<V>(vals + c * 16 * VB), L.gather_x(x + 32 * c, L.columns(idx + c * 2 * L.B)), a0);
      a1 = _mm512_fmadd_ps(load16<V>(vals + (c + 1) * 16 * VB),
                           L.gather_x(x + 32 * (c + 1), L.columns(idx + (c + 1) * 2 * L.B)), a1);
    }
    for (; c < full; c++)
      a0 = _mm512_fmadd_ps(load16<V>(vals + c * 16 * VB), L.gather_x(x + 32 * c, L.columns(idx + c * 2 * L.B)), a0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for (int64_t k = full * kNmChunk; k < kept; k++) s += load1<V>(vals + k * VB) * x[L.column(idx, k)];
    y[r] = s;
  }
}

// ---------------------------------------------------------------------------------------------------
// N:M + int4: codes of a chunk are 8 bytes (low nibbles values 0..7, high nibbles 8..15); the chunk lies in
// one group (groups are multiples of 32 columns), so ŵ = (q − z)·s with one broadcast (s, z) per chunk.

template <int N, int M>
void nmq4_rows(const SparseNMQ4& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const NmLanes<N, M> L;
  const int64_t kept = w.kept(), full = kept / kNmChunk, irb = w.index_row_bytes(), crb = w.code_row_bytes();
  const int64_t gs = w.grid().group_size(w.cols());
  const __m128i low4 = _mm_set1_epi8(15);
  for (int64_t r = r0; r < r1; r++) {
    const uint8_t* codes = w.codes() + r * crb;
    const uint8_t* idx = w.indices() + r * irb;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t c = 0; c < full; c++) {
      const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(codes + 8 * c));
      const __m128i q = _mm_unpacklo_epi64(_mm_and_si128(b, low4), _mm_and_si128(_mm_srli_epi16(b, 4), low4));
      const GroupParams p = w.params(r, 32 * c / gs);
      const __m512 wq = _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(q)),
                                                    _mm512_set1_ps(float(p.zero))),
                                      _mm512_set1_ps(p.scale));
      acc = _mm512_fmadd_ps(wq, L.gather_x(x + 32 * c, L.columns(idx + c * 2 * L.B)), acc);
    }
    float s = _mm512_reduce_add_ps(acc);
    for (int64_t k = full * kNmChunk; k < kept; k++) {
      const uint8_t byte = codes[k / kNmChunk * 8 + (k % kNmChunk) % 8];
      const int q = (k % kNmChunk) < 8 ? byte & 15 : byte >> 4;
      const int64_t col = L.column(idx, k);
      s += dequant(q, w.params(r, col / gs)) * x[col];
    }
    y[r] = s;
  }
}

}  // namespace

void sparse_bitmap_gemv_avx512(const SparseBitmap& w, const float* x, float* y, int64_t r0, int64_t r1) {
  if (w.values_type() == SparseValues::F32) return bitmap_rows<SparseValues::F32>(w, x, y, r0, r1);
  bitmap_rows<SparseValues::F16>(w, x, y, r0, r1);
}

void sparse_nm_gemv_avx512(const SparseNM& w, const float* x, float* y, int64_t r0, int64_t r1) {
  const bool f32 = w.values_type() == SparseValues::F32;
  if (w.m() == 4) {
    if (f32) return nm_rows<2, 4, SparseValues::F32>(w, x, y, r0, r1);
    return nm_rows<2, 4, SparseValues::F16>(w, x, y, r0, r1);
  }
  if (f32) return nm_rows<4, 8, SparseValues::F32>(w, x, y, r0, r1);
  nm_rows<4, 8, SparseValues::F16>(w, x, y, r0, r1);
}

void sparse_nmq4_gemv_avx512(const SparseNMQ4& w, const float* x, float* y, int64_t r0, int64_t r1) {
  if (w.m() == 4) return nmq4_rows<2, 4>(w, x, y, r0, r1);
  nmq4_rows<4, 8>(w, x, y, r0, r1);
}

}  // namespace lmp

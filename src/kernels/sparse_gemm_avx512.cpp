// Prefill (n ≥ 16) kernel of the bitmap sparse format, "load as sparse, compute as dense" (Flash-LLM, Xia et
// al. 2023, "Flash-LLM: Enabling Cost-Effective and Highly-Efficient Large Generative Model Inference with
// Unstructured Sparsity", VLDB 2024): the weights stay compressed in memory (bitmap + packed values, sparse.h 1.)
// and every 16-column chunk of a row is expanded in a register (vexpandps from the packed values) into a dense
// micro-tile that feeds FMAs with 6 tokens of X. Register tile: 4 rows × 6 tokens = 24 accumulators (16
// lanes each, reduced at the end of the row), 4 expanded weight vectors, 1 x vector. Each expansion is reused
// by 6 tokens, each x load by 4 rows. The work is that of dense GEMM (zeros are multiplied); what is saved is
// memory traffic: the weight stream is the compressed size. Rows go in panels of 64 whose compressed values stay
// in cache while all token blocks pass over them (X is streamed once per panel). Requires cols % 16 == 0 (the caller checks).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <bit>

#include "kernels/sparse.h"

namespace lmp {

namespace {

template <SparseValues V>
inline __m512 expand16(__mmask16 m, const uint8_t*& p) {
  const int pc = std::popcount(unsigned(m));
  __m512 v;
  if constexpr (V == SparseValues::F32) {
    v = _mm512_maskz_expandloadu_ps(m, p);
  } else {
    v = _mm512_maskz_expand_ps(m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(__mmask16((1u << pc) - 1), p)));
  }
  p += pc * value_bytes(V);
  return v;
}

// Rows [r, r + R) × tokens [t, t + T): Y[t + j][r + i] = Σ_c W[r + i][c] · X[t + j][c].
template <SparseValues V, int R, int T>
void tile(const SparseBitmap& w, const float* X, int64_t t, float* Y, int64_t r) {
  const int64_t C = w.cols(), nw = w.words(), ldy = w.rows();
  const uint64_t* bm[R];
  const uint8_t* p[R];
  for (int i = 0; i < R; i++) {
    bm[i] = w.bitmap() + (r + i) * nw;
    p[i] = w.values() + w.row_ptr()[r + i] * value_bytes(V);
  }
  __m512 acc[R][T];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
  const float* x = X + t * C;
  for (int64_t c = 0; c < C; c += 16) {
    __m512 wv[R];
    for (int i = 0; i < R; i++) wv[i] = expand16<V>(__mmask16(bm[i][c / 64] >> (c % 64)), p[i]);
    for (int j = 0; j < T; j++) {
      const __m512 xv = _mm512_loadu_ps(x + j * C + c);
      for (int i = 0; i < R; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < T; j++) Y[(t + j) * ldy + r + i] = _mm512_reduce_add_ps(acc[i][j]);
}

template <SparseValues V, int T>
void panel(const SparseBitmap& w, const float* X, int64_t t, float* Y, int64_t r0, int64_t r1) {
  int64_t r = r0;
  for (; r + 4 <= r1; r += 4) tile<V, 4, T>(w, X, t, Y, r);
  for (; r < r1; r++) tile<V, 1, T>(w, X, t, Y, r);
}

// Panels of 64 rows (their compressed values stay in L2 while every token block passes over them).
template <SparseValues V>
void gemm_rows(const SparseBitmap& w, const float* X, int64_t n, float* Y, int64_t r0, int64_t r1) {
  for (int64_t p0 = r0; p0 < r1; p0 += 64) {
    const int64_t p1 = std::min(r1, p0 + 64);
    int64_t t = 0;
    for (; t + 6 <= n; t += 6) panel<V, 6>(w, X, t, Y, p0, p1);
    switch (n - t) {
      case 5: panel<V, 5>(w, X, t, Y, p0, p1); break;
      case 4: panel<V, 4>(w, X, t, Y, p0, p1); break;
      case 3: panel<V, 3>(w, X, t, Y, p0, p1); break;
      case 2: panel<V, 2>(w, X, t, Y, p0, p1); break;
      case 1: panel<V, 1>(w, X, t, Y, p0, p1); break;
      default: break;
    }
  }
}

}  // namespace

void sparse_bitmap_gemm_avx512(const SparseBitmap& w, const float* X, int64_t n, float* Y, int64_t r0, int64_t r1) {
  if (w.values_type() == SparseValues::F32) gemm_rows<SparseValues::F32>(w, X, n, Y, r0, r1);
  else gemm_rows<SparseValues::F16>(w, X, n, Y, r0, r1);
}

}  // namespace lmp

// The one loop body of the W8A8 GEMM, compiled once per ISA: w8a8_avx2.cpp and w8a8_avx512.cpp include this
// with a traits struct I that provides
//   Acc, Wt, Xb, F           int32 accumulator of one 16-row panel, its loaded weights (one 4-column chunk),
//                            a broadcast 4-byte activation chunk, f32 vector of 16 rows
//   SHIFTED                  activations are fed as xq + 128 (then fix() subtracts 128 · Σ q)
//   NP, NT, NTG, NP1         register blocking: panels × tokens (per-row scales), tokens when grouped,
//                            panels when n == 1
//   loadw(p), bx(p), dot(acc, w, x), zero(), fix(acc, corr), store_i(p, acc, nvalid)
//   cvt(acc), loadf(p), bcast(s), fma, mul, zerof(), storef(p, v, nvalid)
// Math (see w8a8.h): I = Σ_{c∈g} q·xq exactly in int32; y = d_t · Σ_g s_g · I_g.
#pragma once
#include <algorithm>

#include "kernels/w8a8.h"

namespace lmp::w8a8_detail {

// NP panels from p × NT tokens from t0, all groups. Per-row scales (!G): one int32 chain per (panel, token)
// over the whole row, scaled once. Grouped: int32 chains per group, flushed into f32 accumulators.
template <class I, bool G, bool INTS, int NP, int NT>
inline void tile(const W8A8View& W, const W8Acts& A, W8Out out, int64_t p, int64_t t0) {
  using Acc = typename I::Acc;
  using F = typename I::F;
  const int8_t* wp[NP];
  const uint8_t* xp[NT];
  int nv[NP];
  for (int i = 0; i < NP; i++) {
    wp[i] = W.qw + (p + i) * W.nchunks * 64;
    nv[i] = int(std::min<int64_t>(W8_PANEL, W.rows - (p + i) * W8_PANEL));
  }
  for (int t = 0; t < NT; t++) xp[t] = A.x(t0 + t);
  F fa[NP][NT];
  if constexpr (G && !INTS)
    for (int i = 0; i < NP; i++)
      for (int t = 0; t < NT; t++) fa[i][t] = I::zerof();
  for (int64_t g = 0; g < W.ngroups; g++) {
    const int64_t k0 = g * W.gchunks, k1 = std::min(W.nchunks, k0 + W.gchunks);
    Acc ia[NP][NT];
    for (int i = 0; i < NP; i++)
      for (int t = 0; t < NT; t++) ia[i][t] = I::zero();
    for (int64_t k = k0; k < k1; k++) {
      typename I::Wt w[NP];
      for (int i = 0; i < NP; i++) w[i] = I::loadw(wp[i] + k * 64);
      for (int t = 0; t < NT; t++) {
        typename I::Xb x = I::bx(xp[t] + k * W8_KC);
        for (int i = 0; i < NP; i++) ia[i][t] = I::dot(ia[i][t], w[i], x);
      }
    }
    for (int i = 0; i < NP; i++) {
      const int64_t off = ((p + i) * W.ngroups + g) * W8_PANEL;
      for (int t = 0; t < NT; t++) {
        Acc v = I::fix(ia[i][t], W.pcorr + off);
        if constexpr (INTS) {
          I::store_i(out.Yi + ((t0 + t) * W.ngroups + g) * W.rows + (p + i) * W8_PANEL, v, nv[i]);
        } else if constexpr (G) {
          fa[i][t] = I::fma(I::cvt(v), I::loadf(W.pscale + off), fa[i][t]);
        } else {
          F s = I::mul(I::loadf(W.pscale + off), I::bcast(A.d[size_t(t0 + t)]));
          I::storef(out.Y + (t0 + t) * W.rows + (p + i) * W8_PANEL, I::mul(I::cvt(v), s), nv[i]);
        }
      }
    }
  }
  if constexpr (G && !INTS)
    for (int i = 0; i < NP; i++)
      for (int t = 0; t < NT; t++)
        I::storef(out.Y + (t0 + t) * W.rows + (p + i) * W8_PANEL, I::mul(fa[i][t], I::bcast(A.d[size_t(t0 + t)])),
                  nv[i]);
}

// Panels [p0, p1) × NT tokens from t.
template <class I, bool G, bool INTS, int NT>
inline void tokens(const W8A8View& W, const W8Acts& A, W8Out out, int64_t p0, int64_t p1, int64_t t) {
  constexpr int NP = NT == 1 ? I::NP1 : I::NP;
  int64_t p = p0;
  for (; p + NP <= p1; p += NP) tile<I, G, INTS, NP, NT>(W, A, out, p, t);
  for (; p < p1; p++) tile<I, G, INTS, 1, NT>(W, A, out, p, t);
}

// The last n % NT tokens: the tile of exactly that width.
template <class I, bool G, bool INTS, int NT>
inline void tokens_rest(const W8A8View& W, const W8Acts& A, W8Out out, int64_t p0, int64_t p1, int64_t t,
                        int64_t rest) {
  if constexpr (NT >= 1) {
    if (rest == NT) return tokens<I, G, INTS, NT>(W, A, out, p0, p1, t);
    tokens_rest<I, G, INTS, NT - 1>(W, A, out, p0, p1, t, rest);
  }
}

template <class I, bool G, bool INTS>
void panels_kernel(const W8A8View& W, const W8Acts& A, W8Out out, int64_t p0, int64_t p1) {
  constexpr int NT = G ? I::NTG : I::NT;
  int64_t t = 0;
  for (; t + NT <= A.n; t += NT) tokens<I, G, INTS, NT>(W, A, out, p0, p1, t);
  tokens_rest<I, G, INTS, NT - 1>(W, A, out, p0, p1, t, A.n - t);
}

template <class I>
W8A8PanelsKernel kernel_table(bool grouped, bool ints) {
  if (ints) return grouped ? panels_kernel<I, true, true> : panels_kernel<I, false, true>;
  return grouped ? panels_kernel<I, true, false> : panels_kernel<I, false, false>;
}

}  // namespace lmp::w8a8_detail

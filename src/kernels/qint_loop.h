// The one loop body of the group-wise integer kernels, compiled once per ISA: qint_avx2.cpp and
// qint_avx512.cpp include this with an ISA traits struct I that provides
//   F, C                      float vector, code vector; I::W weights per step, I::STEPS steps per block
//   codes<B>(blk, st)         the W codes of step st of a 64-weight block, as u8 (or i8, see zero_offset)
//   dot<B>(c, x)              int dot of the codes with W int8 activations, per-lane int32 → float
//                             (lanes of one 32-weight activation block stay together)
//   load_d(p)                 that step's activation scales, lane-aligned with dot (QActs::dv)
//   scale_pair(p, two)        lanes of the first 32 weights f16 p[0], the rest p[1] (0 unless two);
//                             only used when group < W
//   zero_offset<B>            codes handed to dot are q − zero_offset (AVX2 8-bit uses q − 128)
//   zero_terms<NT>(...)       zs[t] = Σ_g s_g · (z_g − zero_offset) · gsum_t[g] for one row
//   zero(), bcast, fma, mul, hsum.
// Math (see qint.h): y = Σ_g s_g · (Σ_k d_k Σ_i q_i xq_i − z_g · gsum_g). Private to the kernels.
#pragma once
#include <algorithm>

#include "kernels/qint.h"

namespace lmp::qint_detail {

// NR rows starting at r × tokens [t0, t0 + NT) × steps [sb, se): NR·NT independent accumulator chains,
// so the fma latency is hidden (one row alone is latency-bound at one fma per block). The first chunk
// (sb == 0) writes Y, later chunks add to it.
template <class I, int B, int NR, int NT>
inline void rows_tokens(const QIntView& W, const QActs& A, float* Y, int64_t r, int64_t t0, int64_t sb, int64_t se) {
  using F = typename I::F;
  using C = typename I::C;
  constexpr int BB = qblock_bytes(B);
  constexpr int OFF = I::template zero_offset<B>;
  const int64_t ng = W.ngroups, nsteps = W.nblk * I::STEPS;
  const bool first = sb == 0;
  const int zdef = 1 << (B - 1);
  const int8_t* x[NT];
  const float *d[NT], *gs[NT];
  for (int t = 0; t < NT; t++) x[t] = A.x(t0 + t), d[t] = A.d(t0 + t), gs[t] = A.s(t0 + t);
  const uint8_t* rc[NR];
  const f16_t* sc[NR];
  const uint8_t* zp[NR];
  for (int i = 0; i < NR; i++) {
    rc[i] = W.codes + (r + i) * W.row_bytes;
    sc[i] = W.scales + (r + i) * ng;
    zp[i] = W.zeros ? W.zeros + (r + i) * ng : nullptr;
  }
  F tot[NR][NT];
  float zs[NR][NT] = {};
  for (int i = 0; i < NR; i++)
    for (int t = 0; t < NT; t++) tot[i][t] = I::zero();
  // Zero-point terms Σ_g s_g · (z_g − OFF) · gsum_g, one vectorised pass per row, with the first chunk.
  if (first)
    for (int i = 0; i < NR; i++) I::template zero_terms<NT>(sc[i], zp[i], float(zdef - OFF), float(OFF), gs, ng, zs[i]);
  // Step s: codes of row i, activation offsets.
  auto codes = [&](int i, int64_t s) { return I::template codes<B>(rc[i] + s / I::STEPS * BB, int(s % I::STEPS)); };
  auto xoff = [](int64_t s) { return s / I::STEPS * QK + s % I::STEPS * I::W; };
  auto doff = [](int64_t s) { return s / I::STEPS * 16 + s % I::STEPS * 8; };

  if (ng > 1 && W.group < I::W) {  // AVX-512 with group 32: a step spans two groups
    for (int64_t s = sb; s < se; s++) {
      int64_t g0 = s * I::W / W.group;
      F dv[NT];
      for (int t = 0; t < NT; t++) dv[t] = I::load_d(d[t] + doff(s));
      for (int i = 0; i < NR; i++) {
        F sv = I::scale_pair(sc[i] + g0, g0 + 1 < ng);
        C c = codes(i, s);
        for (int t = 0; t < NT; t++)
          tot[i][t] = I::fma(I::template dot<B>(c, x[t] + xoff(s)), I::mul(dv[t], sv), tot[i][t]);
      }
    }
  } else {
    const int64_t spg = ng == 1 ? nsteps : W.group / I::W;  // steps per group
    // Groups overlapping [sb, se); a group cut by the chunk is flushed in parts (its scale distributes).
    for (int64_t g = sb / spg; g * spg < se; g++) {
      F ga[NR][NT];
      for (int i = 0; i < NR; i++)
        for (int t = 0; t < NT; t++) ga[i][t] = I::zero();
      for (int64_t s = std::max(sb, g * spg), s1 = std::min(se, (g + 1) * spg); s < s1; s++) {
        F dv[NT];
        for (int t = 0; t < NT; t++) dv[t] = I::load_d(d[t] + doff(s));
        for (int i = 0; i < NR; i++) {
          C c = codes(i, s);
          for (int t = 0; t < NT; t++) ga[i][t] = I::fma(I::template dot<B>(c, x[t] + xoff(s)), dv[t], ga[i][t]);
        }
      }
      for (int i = 0; i < NR; i++) {
        float s = f16_to_f32(sc[i][g]);
        F sv = I::bcast(s);
        for (int t = 0; t < NT; t++) tot[i][t] = I::fma(ga[i][t], sv, tot[i][t]);
      }
    }
  }
  for (int i = 0; i < NR; i++)
    for (int t = 0; t < NT; t++) {
      float& y = Y[(t0 + t) * W.rows + r + i];
      y = (first ? -zs[i][t] : y) + I::hsum(tot[i][t]);
    }
}

// Rows [r0, r1) × tokens [t0, t0 + NT), NR rows at a time.
// Steps are cut into chunks of 2048 weights so that the chunk's activations (NT tokens × 2048 × (1 byte
// + 1 float per 4)) stay in L1 while the rows walk over them; prefill is L2-bound otherwise.
template <class I, int B, int NR, int NT>
inline void rows_block(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1, int64_t t0) {
  constexpr int64_t KC = 2048 / I::W;
  const int64_t nsteps = W.nblk * I::STEPS;
  for (int64_t sb = 0; sb < nsteps; sb += KC) {
    const int64_t se = std::min(nsteps, sb + KC);
    int64_t r = r0;
    for (; r + NR <= r1; r += NR) rows_tokens<I, B, NR, NT>(W, A, Y, r, t0, sb, se);
    for (; r < r1; r++) rows_tokens<I, B, 1, NT>(W, A, Y, r, t0, sb, se);
  }
}

// QIntRowsKernel: decode (n = 1) takes I::GEMV_ROWS rows at a time; prefill 4 tokens × I::GEMM_ROWS rows.
template <class I, int B>
void rows_kernel(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1) {
  constexpr int NR = I::GEMM_ROWS;
  int64_t t = 0;
  for (; t + 4 <= A.n; t += 4) rows_block<I, B, NR, 4>(W, A, Y, r0, r1, t);
  switch (A.n - t) {
    case 3: rows_block<I, B, NR, 3>(W, A, Y, r0, r1, t); break;
    case 2: rows_block<I, B, NR, 2>(W, A, Y, r0, r1, t); break;
    case 1: rows_block<I, B, I::GEMV_ROWS, 1>(W, A, Y, r0, r1, t); break;
    default: break;
  }
}

template <class I>
QIntRowsKernel kernel_table(int bits) {
  switch (bits) {
    case 2: return rows_kernel<I, 2>;
    case 3: return rows_kernel<I, 3>;
    case 4: return rows_kernel<I, 4>;
    case 8: return rows_kernel<I, 8>;
  }
  return nullptr;
}

}  // namespace lmp::qint_detail

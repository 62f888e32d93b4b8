// The one loop body of the group-wise integer kernels, compiled once per ISA: qint_avx2.cpp and
// qint_avx512.cpp include this with an ISA traits struct I that provides
//   F, C                      float vector, code vector; I::W weights per step, I::STEPS steps per block
//   codes<B>(blk, st)         the W codes of step st of a 64-weight block, as u8 (or i8, see zero_offset)
//   dot<B>(c, x)              int dot of the codes with W int8 activations, per-lane int32 → float
//                             (lanes of one 32-weight activation block stay together)
//   load_d(p)                 that step's activation scales, lane-aligned with dot (QActs::dv)
//   scale_pair(s0, s1)        lanes of the first 32 weights s0, the rest s1 (only when group < W)
//   zero_offset<B>            codes handed to dot are q − zero_offset (AVX2 8-bit uses q − 128)
//   zero(), bcast, fma, mul, hsum.
// Math (see qint.h): y = Σ_g s_g · (Σ_k d_k Σ_i q_i xq_i − z_g · gsum_g). Private to the kernels.
#pragma once
#include <algorithm>

#include "kernels/qint.h"

namespace lmp::qint_detail {

// Rows [r0, r1) × tokens [t0, t0 + NT).
template <class I, int B, int NT>
inline void rows_tokens(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1, int64_t t0) {
  using F = typename I::F;
  using C = typename I::C;
  constexpr int BB = qblock_bytes(B);
  constexpr int OFF = I::template zero_offset<B>;
  const int64_t ng = W.ngroups, nsteps = W.nblk * I::STEPS;
  const int zdef = 1 << (B - 1);
  const int8_t* x[NT];
  const float *d[NT], *gs[NT];
  for (int t = 0; t < NT; t++) x[t] = A.x(t0 + t), d[t] = A.d(t0 + t), gs[t] = A.s(t0 + t);

  for (int64_t r = r0; r < r1; r++) {
    const uint8_t* rc = W.codes + r * W.row_bytes;
    const f16_t* sc = W.scales + r * ng;
    const uint8_t* zp = W.zeros ? W.zeros + r * ng : nullptr;
    F tot[NT];
    float zs[NT];
    for (int t = 0; t < NT; t++) tot[t] = I::zero(), zs[t] = 0;
    auto add_zero_term = [&](int64_t g, float s) {
      float z = float((zp ? int(zp[g]) : zdef) - OFF) * s;
      for (int t = 0; t < NT; t++) zs[t] += z * gs[t][g];
    };
    auto step = [&](int64_t s, auto&& body) {  // codes of step s, then body(codes, weight offset)
      int64_t b = s / I::STEPS;
      int st = int(s % I::STEPS);
      C c = I::template codes<B>(rc + b * BB, st);
      body(c, b * QK + st * I::W, b * 16 + st * 8);
    };
    if (ng > 1 && W.group < I::W) {  // AVX-512 with group 32: a step spans two groups
      for (int64_t s = 0; s < nsteps; s++) {
        int64_t g0 = s * I::W / W.group;
        float s0 = f16_to_f32(sc[g0]), s1 = g0 + 1 < ng ? f16_to_f32(sc[g0 + 1]) : 0.0f;
        F sv = I::scale_pair(s0, s1);
        step(s, [&](C c, int64_t xo, int64_t dofs) {
          for (int t = 0; t < NT; t++)
            tot[t] = I::fma(I::template dot<B>(c, x[t] + xo), I::mul(I::load_d(d[t] + dofs), sv), tot[t]);
        });
        add_zero_term(g0, s0);
        if (g0 + 1 < ng) add_zero_term(g0 + 1, s1);
      }
    } else {
      const int64_t spg = ng == 1 ? nsteps : W.group / I::W;  // steps per group
      for (int64_t g = 0; g < ng; g++) {
        F ga[NT];
        for (int t = 0; t < NT; t++) ga[t] = I::zero();
        for (int64_t s = g * spg, se = std::min(nsteps, s + spg); s < se; s++)
          step(s, [&](C c, int64_t xo, int64_t dofs) {
            for (int t = 0; t < NT; t++) ga[t] = I::fma(I::template dot<B>(c, x[t] + xo), I::load_d(d[t] + dofs), ga[t]);
          });
        float s = f16_to_f32(sc[g]);
        F sv = I::bcast(s);
        for (int t = 0; t < NT; t++) tot[t] = I::fma(ga[t], sv, tot[t]);
        add_zero_term(g, s);
      }
    }
    for (int t = 0; t < NT; t++) Y[(t0 + t) * W.rows + r] = I::hsum(tot[t]) - zs[t];
  }
}

// QIntRowsKernel: all tokens of A in blocks of 4 (register-blocked), rows [r0, r1).
template <class I, int B>
void rows_kernel(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1) {
  int64_t t = 0;
  for (; t + 4 <= A.n; t += 4) rows_tokens<I, B, 4>(W, A, Y, r0, r1, t);
  switch (A.n - t) {
    case 3: rows_tokens<I, B, 3>(W, A, Y, r0, r1, t); break;
    case 2: rows_tokens<I, B, 2>(W, A, Y, r0, r1, t); break;
    case 1: rows_tokens<I, B, 1>(W, A, Y, r0, r1, t); break;
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

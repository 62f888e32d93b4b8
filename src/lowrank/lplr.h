// LPLR (Saha, Srivastava, Pilanci 2023, "Matrix Compression via Randomized Low Rank and Low Precision
// Factorization", arXiv 2310.11028). Both factors of W ≈ L·R are stored in low precision; the second factor
// is fitted to the already-quantized first, so it absorbs the first factor's rounding error:
//   1. sketch the column space:  Y = W·S,  S ∈ ℝ^{n×k} with i.i.d. N(0, 1/k) entries   (W is m × n)
//   2. quantize the sketch:      L = Q₁(Y)                                  (b₁-bit codes, kernels/qint.h)
//   3. least squares:            R = argmin_Z ‖L·Z − W‖_F = L⁺W               (LAPACK dgelsd, SVD-based so a
//                                                                             rank-deficient L is handled)
//   4. quantize R:               R̂ = Q₂(R)                                  (b₂-bit codes)
//   W ≈ L·R̂, stored as a LowRankMatrix whose factors are QIntMatrix (A = L: m × k, B = R̂: k × n), run by the
//   packed int kernels. Q is the group-wise uniform grid of quant/grid.h (groups along each factor's rows).
// Option "sketch": "svd" uses the deterministic sketch S = V_k Σ_k^{-1/2}, so Y = U_k √Σ_k is the first factor
// of the plain SVD split (lowrank/truncated_svd.h); steps 2–4 are unchanged, i.e. the quantized SVD factors
// with the second factor refitted by least squares to the quantized first. Its error is then at most that of
// quantizing both SVD factors directly before R is rounded (the LS solution is optimal given L̂, and the SVD's
// √Σ_k V_kᵀ is one candidate). The paper's Gaussian sketch spans a worse rank-k subspace than the top singular
// vectors and, with per-group scales, gains nothing from its flattening of the entries: measured on
// tests/test_lowrank and bench/README it is the weaker choice at equal rank (reported, not hidden).
// Rank from the parameter ratio as for SVD (k = ⌊R·m·n/(m+n)⌋); bytes are then ≈ R·(b + group overhead)/32
// of the f32 matrix (codes are padded to blocks of 64 along each factor row: small k wastes bytes).
//
// Recipe stage: {"modifier": "lplr", "ratio": R, "bits": 4, "group": 32, "bits_b": (default bits), "sym",
//                "sketch": "gaussian"|"svd", "seed": 0, "targets", "ignore"}.
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "kernels/qint.h"
#include "lowrank/truncated_svd.h"

namespace lmp {

struct LplrOptions {
  int64_t rank = 0;
  QuantGrid grid_a, grid_b;  // Q₁ (first factor), Q₂ (second factor)
  bool svd_sketch = false;
  uint64_t seed = 0;
};

std::unique_ptr<LowRankMatrix> lplr_factorize(const float* W, int64_t m, int64_t n, const LplrOptions& o,
                                              const std::string& what = "lplr");

std::unique_ptr<BlockModifier> make_lplr_modifier(const nlohmann::json& stage);

}  // namespace lmp

// OneBit (Xu, Han, Yang, Wang, Wang, Liu, Liu, Che 2024, "OneBit: Towards Extremely Low-bit Large Language
// Models", arXiv 2402.11295): W ≈ diag(g) · sign(W) · diag(h), one bit per weight plus an f16 value per output
// row (g) and per input column (h).
// Initialisation by SVID (sign–value-independent decomposition): W = sign(W) ⊙ |W|, and |W| ≈ σ₁ u vᵀ, its best
// rank-1 approximation (thin SVD through LAPACK, lowrank/truncated_svd). By Perron–Frobenius u, v ≥ 0 (taken so),
// and g = √σ₁ u, h = √σ₁ v. Since sign(W) ⊙ (g hᵀ) − W = sign(W) ⊙ (g hᵀ − |W|) for g, h ≥ 0, SVID is the
// Frobenius-optimal choice of (g, h) for the fixed signs (Eckart–Young); per-row mean|W| (h = 1) is a special case.
// The paper then trains g, h (and the latent weights) by knowledge distillation. Not done here; instead an
// optional data-aware step ("hessian_iters" > 0, needs calibration): with the signs fixed, alternate the exact
// minimizers of the layer-output error tr(ΔW·H·ΔWᵀ) (H = 2/n·XᵀX + λI, the GPTQ Hessian damped by damp·mean diag):
//     g_r = z_rᵀ H w_r / z_rᵀ H z_r,   z_r = s_r ⊙ h                       (per row, closed form)
//     (H ∘ (Sᵀ diag(g²) S)) h = diag-free rhs b,  b_i = Σ_r g_r s_ri (W H)_ri   (one n × n solve)
// Each step minimizes the objective in its variable, so it never increases.
// Stored: OneBitMatrix (kernels/onebit.h) — packed sign bits + f16 g + f16 h, run by a ±1 GEMV.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/onebit.h"

namespace lmp {

struct OneBitFactors {
  std::vector<float> g, h;  // (rows), (cols)
};

// SVID of W (rows × cols): g = √σ₁ u, h = √σ₁ v of the rank-1 SVD of |W| (non-negative).
OneBitFactors svid(const float* W, int64_t rows, int64_t cols, const std::string& what);

// The data-aware refinement above, `iters` rounds of (g-step, h-step) on H (cols × cols); returns the
// objective tr(ΔW·(H + λI)·ΔWᵀ) after each round (the first entry: before any).
std::vector<double> onebit_refine(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                  double damp, int iters, OneBitFactors* f);

// Signs of W (≥ 0 → +1) with the factors, as stored.
std::unique_ptr<OneBitMatrix> onebit_matrix(const float* W, int64_t rows, int64_t cols, const OneBitFactors& f);

std::unique_ptr<BlockModifier> make_onebit_modifier(const nlohmann::json& stage);

}  // namespace lmp

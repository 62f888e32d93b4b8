// LoRA (Hu et al. 2021) helpers: initialisation, LoftQ (Li et al. 2023, "LoftQ: LoRA-Fine-Tuning-aware
// Quantization"), and the rank-r split used by both.
//   LoRA:  W' = W + (α/r)·B·A, A (r, I) ~ U(−1/√I, 1/√I), B (O, r) = 0, so training starts at W.
//   LoftQ: find a quantized Q and A, B with W ≈ Q + (α/r)·B·A by alternating, starting from B·A = 0:
//            Q ← quant(W − (α/r)·B·A)   (RTN on the quant/grid);   (α/r)·B·A ← SVD_r(W − Q)
//          so the adapters start by absorbing the quantization error instead of starting at zero.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/qint.h"

namespace lmp::train {

// Rank-r truncated SVD of R (O, I) (LAPACKE_sgesdd): R ≈ U_r Σ_r V_rᵀ, split evenly as
// B = U_r √Σ_r / √scale (O, r), A = √Σ_r V_rᵀ / √scale (r, I), so that scale·B·A ≈ R.
void lowrank_split(const float* R, int O, int I, int rank, double scale, float* A, float* B);

struct LoftQResult {
  std::unique_ptr<QIntMatrix> Q;
  std::vector<float> A, B;  // (r, I), (O, r)
};
LoftQResult loftq_init(const float* W, int O, int I, const QuantGrid& grid, int rank, double scale, int iters);

}  // namespace lmp::train

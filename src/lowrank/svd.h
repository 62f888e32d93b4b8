// Plain truncated SVD (Eckart & Young 1936, "The approximation of one matrix by another of lower rank",
// Psychometrika 1(3)): W ≈ U_k Σ_k V_kᵀ, stored as the factors A = U_k √Σ_k and B = √Σ_k V_kᵀ
// (lowrank/truncated_svd.h). Data-free: the baseline that activation-aware methods (ASVD) are measured
// against. Stored: a LowRankMatrix of f32 (or f16) factors, executed as two matmuls.
//
// Recipe stage: {"modifier": "svd", "ratio": R | "energy": E, "factor_dtype": "f32"|"f16", "targets", "ignore"}.
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "lowrank/truncated_svd.h"

namespace lmp {

// Rank-k factors of W (m × n); throws for k ∉ [1, min(m, n)).
std::unique_ptr<LowRankMatrix> svd_factorize(const float* W, int64_t m, int64_t n, int64_t k,
                                             FactorDtype dt = FactorDtype::F32, const std::string& what = "svd");

std::unique_ptr<BlockModifier> make_svd_modifier(const nlohmann::json& stage);

}  // namespace lmp

// LoRC, low-rank compensation (Yao, Wu, Li, Youn, He 2023, "ZeroQuant-V2: Exploring Post-training Quantization
// in LLMs from Comprehensive Study to Low Rank Compensation", arXiv 2303.08302, §5): after any weight-only
// quantizer has produced Ŵ, the quantization error E = W − Ŵ is approximated by its truncated SVD
// E ≈ U_k Σ_k V_kᵀ and the two factors are stored beside Ŵ. By Eckart–Young the corrected error is
//   ‖W − (Ŵ + U_k Σ_k V_kᵀ)‖_F² = ‖E‖_F² − Σ_{i≤k} σ_i(E)²,
// i.e. LoRC removes exactly the k largest squared singular values of the error.
// Stored: ResidualMatrix (kernels/residual.h) = the quantizer's own format (QIntMatrix: int kernels) + a
// LowRankMatrix of f16 factors A = U_k √Σ_k (m × k), B = √Σ_k V_kᵀ (k × n) (lowrank/truncated_svd.h's split);
// the paper stores the factors in 8 bits, here f16 (16·k·(m+n)/(m·n) extra bits/weight).
// Recipe stage: {"modifier": "lorc", "rank": 8, "factor_dtype": "f16", "quantizer": {<any weight-only stage>}}:
// LoRC wraps the quantization stage because it needs W from before quantization; every Linear the inner stage
// rewrote gets its correction. CLI: `lmpress quantize --method gptq ... --lorc-rank 8`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/residual.h"
#include "lowrank/truncated_svd.h"

namespace lmp {

struct LorcOptions {
  int64_t rank = 8;
  FactorDtype dtype = FactorDtype::F16;
};

struct LorcResult {
  std::unique_ptr<ResidualMatrix> w;  // q + low-rank correction
  std::vector<double> sigma;          // singular values of E = W − Ŵ, descending
};

// W (rows × cols) the matrix before quantization, q its quantized form. Throws lmp::Error unless
// 1 ≤ rank < min(rows, cols).
LorcResult lorc_correct(const float* W, WeightPtr q, const LorcOptions& o, const std::string& what);

// Wraps `inner` (a weight-only quantization modifier built from stage["quantizer"]).
std::unique_ptr<BlockModifier> make_lorc_modifier(const nlohmann::json& stage, std::unique_ptr<BlockModifier> inner);

}  // namespace lmp

// OWQ (Lee, Jin, Kim, Kim, Park 2024, "OWQ: Outlier-Aware Weight Quantization for Efficient Fine-Tuning and
// Inference of Large Language Models", AAAI 2024, arXiv 2306.02272): a few "weak" input columns — those whose
// quantization would cost the most output error — stay in f16, all others are GPTQ-quantized.
// Sensitivity of column j: λ_j = H_jj · ‖W_:,j‖² (H = 2/n·XᵀX, the GPTQ Hessian), the paper's proxy for
// H_jj·‖ΔW_:,j‖². The top k = ceil(weak_frac · cols) columns are kept. The rest is quantized by gptq_quantize
// with the reduced Hessian H[R, R]; then, as OWQ does by placing the weak columns last in the GPTQ sweep, the
// kept columns absorb the remaining error: with ΔW_R = W_R − Q_R the output error in the H metric is minimized
// over the kept weights by  W_K ← W_K + ΔW_R · H[R, K] · (H[K, K] + λI)⁻¹.
// Stored: ColumnSplitMatrix (kernels/colsplit.h) = QIntMatrix over the rest + f16 kept columns.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/colsplit.h"
#include "quant/gptq.h"

namespace lmp {

struct OwqOptions {
  GptqOptions gptq;
  double weak_frac = 0.01;  // fraction of input columns kept in f16 (at least 1 when > 0)
};

// The k most sensitive columns (ascending indices) by H_jj · ‖W_:,j‖².
std::vector<int32_t> owq_weak_columns(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                      int64_t k);

// W (rows × cols), H (cols × cols). Returns a ColumnSplitMatrix, or plain GPTQ's QIntMatrix when k = 0.
WeightPtr owq_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H, const OwqOptions& o,
                       const std::string& what);

std::unique_ptr<BlockModifier> make_owq_modifier(const nlohmann::json& stage);

}  // namespace lmp

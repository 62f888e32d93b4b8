// FP8 / FP4 weight quantization (FP8: Micikevicius et al. 2022, arXiv 2209.05433; FP4 E2M1: LLM-FP4, Liu et al.
// 2023, arXiv 2310.16836). Each group of `group` weights (0 = row) gets the f16 scale that maps its max|w| to
// the format's largest finite value times a per-tensor clip 2^(−b/4), b ∈ {0, 1, 2, 3, 4}: LLM-FP4's
// exponent-bias search in its simplest form, the b minimising the weight MSE Σ(w − ŵ)² of each Linear
// (`bias_search`, default true). Codes round to nearest even with saturation (kernels/lowbit_float.h).
// Modifiers: "fp8" ("fp": "e4m3" | "e5m2", default e4m3) and "fp4" (E2M1). No calibration.
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "kernels/lowbit_float.h"

namespace lmp {

struct LowFloatChoice {
  std::unique_ptr<LowFloatMatrix> q;
  float clip = 1;
  double mse = 0;  // mean (w − ŵ)²
};
// The clip of {2^(−b/4)} (b = 0 only when !search) with the lowest weight MSE; pow2: scales rounded up to powers
// of two (quant/zeroquant_fp.h).
LowFloatChoice quantize_lowfloat(const float* W, int64_t rows, int64_t cols, LowFloat f, int group, bool search,
                                 bool pow2 = false);

std::unique_ptr<BlockModifier> make_fp8_modifier(const nlohmann::json& stage);
std::unique_ptr<BlockModifier> make_fp4_modifier(const nlohmann::json& stage);

}  // namespace lmp

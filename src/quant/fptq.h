// FPTQ (Li, Liu, Zhang, Wang, Wang, Gu, Chu 2023, "FPTQ: Fine-grained Post-Training Quantization for Large
// Language Models", arXiv 2308.15987): W4A8 — 4-bit group-wise weights, int8 per-token activations
// (kernels/w4a8.h: qint's int4 × int8 kernels), with a layer-wise activation strategy. An input whose
// calibration range max_j max|X_j| exceeds `lae_threshold` is "hard" and gets logarithmic activation
// equalization (LAE) before quantization:
//   s_j = max|X_j| / log2(2 + max|X_j|),   Y = (X · diag(s)⁻¹) · (diag(s) · Wᵀ)
// folded into the op producing X exactly like SmoothQuant (quant/smoothquant.h fold_smoothing: RMSNorm
// weights for q/k/v and gate/up, v_proj rows for o_proj without GQA, up_proj rows for down_proj); the rest are
// quantized per token as they are. (The paper's third class, per-tensor static activations for ranges ≤ 15,
// is not used: every activation here is dynamic per token.) Weights are RTN on the int4 grid (mse honoured).
// Stage arguments: bits (4), group (128), sym, mse, lae_threshold (15; 0 = equalize every input).
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

// s_j = a_j / log2(2 + a_j) (1 where a_j = 0).
std::vector<float> lae_scales(const float* act_max, int64_t C);

std::unique_ptr<BlockModifier> make_fptq_modifier(const nlohmann::json& stage);

}  // namespace lmp

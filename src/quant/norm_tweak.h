// Norm Tweaking (Li, Xu, Zhang, Dong, Chu, Sun, Shen, Mao 2023, "Norm Tweaking: High-performance Low-bit
// Quantization of Large Language Models", arXiv 2309.02784): after a block's Linears are quantized, only the
// block's two RMSNorm weight vectors are tuned so that the quantized block's output distribution matches the
// float block's on the calibration inputs. Loss (the paper's channel-wise distribution loss): every output
// channel c of the block is summarised over the batch's tokens by a Gaussian N(μ_c, σ_c²), and
//   L = 1/C Σ_c KL( N(μ_c^f, σ_c^f²) ‖ N(μ_c^q, σ_c^q²) )
//     = 1/C Σ_c [ log(σ^q/σ^f) + (σ^f² + (μ^f − μ^q)²) / (2σ^q²) − 1/2 ],
// or, with "loss": "mse", the plain output MSE. Gradients through the block come from src/train/ (TrainModel's
// block_only_forward/backward, Linears frozen at their dequantized values), AdamW on the two norms only. A
// tweak that does not lower the loss on the tweak samples is dropped (the block keeps its norms).
// Stored: the quantizer's formats unchanged + the tweaked norm vectors (2·C floats per block; nothing new).
// Recipe stage wraps the quantizer (it needs the float block's outputs first):
//   {"modifier": "norm_tweak", "steps": 10, "lr": 1e-3, "nsamples": 16, "batch": 4, "loss": "kl",
//    "quantizer": {"modifier": "gptq", "bits": 3, "group": 32}}
// CLI: `lmpress quantize --method gptq ... --norm-tweak [--tweak-steps N --tweak-lr LR]`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

struct NormTweakOptions {
  int steps = 10;        // passes over the tweak samples
  int nsamples = 16;     // calibration samples used (the first ones)
  int batch = 4;         // sequences per optimizer step
  double lr = 1e-3;
  bool kl = true;        // channel-wise KL (else output MSE)
};

// The loss of the quantized block output Yq (N, C) against the float one Yf, and dL/dYq into dYq (if not null).
double norm_tweak_loss(const float* Yq, const float* Yf, int64_t N, int64_t C, bool kl, float* dYq);

struct NormTweakResult {
  double before = 0, after = 0;  // mean loss over the tweak samples before / after (after = before when dropped)
  bool kept = false;
};
// Tweaks block l's norms of m (already quantized) so its outputs on X (ns sequences of L tokens, (ns·L, C))
// match Yf, the float block's outputs on X.
NormTweakResult norm_tweak_block(Model& m, int l, const std::vector<float>& X, const std::vector<float>& Yf, int ns,
                                 int L, const NormTweakOptions& o);

std::unique_ptr<BlockModifier> make_norm_tweak_modifier(const nlohmann::json& stage,
                                                        std::unique_ptr<BlockModifier> inner);

}  // namespace lmp

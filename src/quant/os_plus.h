// Outlier Suppression+ (Wei, Zhang, Li, Zhang, Gong, Guo, Liu 2023, "Outlier Suppression+: Accurate quantization
// of large language models by equivalent and effective shifting and scaling", arXiv 2304.09145).
// Activation outliers are asymmetric and concentrated in a few channels; OS+ transforms each channel j of a
// normed input x by a shift and a scale,   x̃_j = (x_j − z_j) / s_j,
//   z_j = (max_j + min_j) / 2                (centres every channel: removes the asymmetry)
//   s_j = max(1, r_j / t), r_j = (max_j − min_j) / 2   (shrinks the channels whose half-range exceeds t)
// over calibration tokens, with t searched (grid of fractions of max_j r_j) to minimise the W8A8 output error of
// the Linears reading x, ‖Q(x̃) Q(W̃)ᵀ + Ŵ z̃ − x Wᵀ‖². The transform is equivalent in float:
//   x Wᵀ + b = x̃ (W diag(s))ᵀ + (b + W z).
// Folding here (Llama, RMSNorm without a bias): s into the norm weight and W (SmoothQuant's folding,
// quant/smoothquant.h fold_smoothing); the shift z̃ = z / s cannot enter the RMSNorm, so each consumer
// Linear stores it (kernels/shifted.h: subtract, then the W8A8 kernel) and its bias becomes b + Ŵ z̃.
// Sites: the attention input (q/k/v) and the MLP input (gate/up); o_proj and down_proj become plain W8A8.
// Stored: q/k/v/gate/up ShiftedMatrix{W8A8Matrix} + f32 bias; o/down W8A8Matrix; the norms rescaled.
// Stage: {"modifier": "os_plus", "group": 0, "nsamples": 8, "grid": 20, "quantize": true}.
// CLI: lmpress quantize --method os_plus [--group G] (+ calibration).
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

struct OsPlusParams {
  std::vector<float> z, s;  // per input channel
  double t = 0;             // the chosen threshold
};

// Per-channel min and max of X (n, C) → z and the candidate scales; t searched over grid fractions of max r_j
// by the W8A8 error of `lins` (W8A8 group `group`) on X.
OsPlusParams os_plus_search(const float* X, int64_t n, int64_t C, const std::vector<const Linear*>& lins, int grid,
                            int group);
// Σ over lins of ‖W8A8 output of the transformed Linear − x Wᵀ‖² on X (identity params: plain W8A8).
double os_plus_error(const float* X, int64_t n, int64_t C, const OsPlusParams& p, const std::vector<const Linear*>& lins,
                     int group);
// Applies p to one site of block b (attn: q/k/v, else gate/up): scales folded into the norm and the Linears,
// each Linear becomes ShiftedMatrix{W8A8 (quantize) or dense f32} with bias b + Ŵ z̃.
void os_plus_apply_site(Block& b, bool attn, const OsPlusParams& p, bool quantize, int group);

std::unique_ptr<BlockModifier> make_os_plus_modifier(const nlohmann::json& stage);

}  // namespace lmp

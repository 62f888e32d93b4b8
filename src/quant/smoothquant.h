// SmoothQuant (Xiao, Lin, Seznec, Wu, Demouth, Han 2022, "SmoothQuant: Accurate and Efficient Post-Training
// Quantization for Large Language Models", arXiv 2211.10438). Activation outliers sit in a few input
// channels; a per-channel scale moves part of their range into the weights, where int8 per-row quantization
// absorbs it:  Y = (X · diag(s)⁻¹) · (diag(s) · Wᵀ),  s_j = max|X_j|^α / max|W_j|^(1−α)
// (max|X_j| from calibration, max|W_j| over the rows of every Linear reading that input, α ∈ [0, 1]).
// diag(s)⁻¹ is folded into what produces the input, so inference costs nothing extra:
//   q/k/v ← attention RMSNorm weight, gate/up ← MLP RMSNorm weight, down ← up_proj rows (silu(g)·u is linear
//   in u), o ← v_proj rows when every attention head has its own KV head (no GQA; otherwise o is left as is).
// Then the targeted Linears become W8A8 (per-token int8 activations, quant/w8a8.h).
// Stage arguments: alpha (0.5), alpha_search (false: per block, the α of {0.1, …, 0.9} that minimises the
// W8A8 block's output error on up to 8 calibration samples), smooth_o / smooth_down (true), quantize (true;
// false = smoothing only, e.g. before another modifier), group (0) for the W8A8 weights.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

struct SmoothOptions {
  double alpha = 0.5;
  bool smooth_o = true, smooth_down = true;
};

// s_j for input width C from max|X_j| (C) and the Linears W (rows_i × C) that read that input.
std::vector<float> smooth_scales(const float* act_max, int64_t C, const std::vector<const Linear*>& lins, double alpha);
// The inputs a per-channel scale can be folded across: attention input (q/k/v ← attention RMSNorm), MLP input
// (gate/up ← MLP RMSNorm), o_proj input (← v_proj rows; only without GQA) and down_proj input (← up_proj rows).
enum class SmoothSite { Attn, Mlp, O, Down };
bool smoothable(const Block& b, SmoothSite site);
// The Linears reading the site's input (q/k/v, gate/up, o or down).
std::vector<const Linear*> site_readers(const Block& b, SmoothSite site);
// LinearKind whose input is the site's (for its statistics): Q, Gate, O, Down.
LinearKind site_kind(SmoothSite site);
// Y = (X · diag(s)⁻¹) · (diag(s) · Wᵀ): diag(s)⁻¹ into the producer, diag(s) into the readers (dense f32).
void fold_smoothing(Block& b, SmoothSite site, const std::vector<float>& s);
// Folds the scales of every smoothable input of block `layer` (statistics of that block) into the block;
// the model's function is unchanged up to rounding. Returns how many inputs were smoothed (2 to 4).
int smooth_block(Model& m, int layer, const BlockStats& stats, const SmoothOptions& o);

std::unique_ptr<BlockModifier> make_smoothquant_modifier(const nlohmann::json& stage);

}  // namespace lmp

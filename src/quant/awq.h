// AWQ (Lin, Tang, Tang, Yang, Dang, Gan, Han 2023, "AWQ: Activation-aware Weight Quantization for LLM
// Compression and Acceleration", arXiv 2306.00978).
//
// Idea (paper §3.2): a few input channels carry large activations, and their weights matter most. Scaling
// such a channel up before quantization and its input down by the same factor is exact in float,
//     y = W x = (W·diag(s)) (diag(s)⁻¹ x),
// but shrinks that channel's relative rounding error. s is searched per group of Linears that share an input:
//     s = s_X^α,  s_X = mean_tokens |x|   (per input channel),  s ← s / sqrt(max s · min s)
//     α* = argmin_{α ∈ grid of n_grid points in [0, 1]} ‖ B(X; Q(W·diag(s))·diag(s)⁻¹) − B(X; W) ‖²
// with B the decoder block's output on (a subset of) the calibration samples. α = 0 (s = 1) is plain RTN,
// always a candidate, so the objective is never worse than RTN's. diag(s)⁻¹ is folded into the op that
// produces the group's input: an RMSNorm weight, or the rows of the previous Linear (+ its bias).
//
// Then weight clipping (the reference code's auto_clip): per output row and weight group, the range is
// clamped to ±p·max|w| with p searched over a grid in [1 − max_shrink, 1], minimising the group's partial
// output error ‖X_g (w_g − Q(clip_p(w_g)))‖² on the captured inputs of that Linear (q/k are not clipped:
// their errors are amplified by the attention softmax, as in the reference). ‖X_g d‖² = dᵀ (X_gᵀX_g) d,
// so the inputs are accumulated as one Gram matrix XᵀX per input site and every candidate costs g² per row.
//
// Stored: a QIntMatrix per Linear (RTN on the scaled, clipped weights), or with `quantize: false` the
// scaled/clipped dense f32 weights, for a later stage (e.g. GPTQ: "AWQ+GPTQ") to quantize.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "quant/grid.h"

namespace lmp {

struct AwqOptions {
  QuantGrid grid;
  int n_grid = 20;           // α candidates: i / (n_grid − 1), i = 0 .. n_grid − 1
  double fixed_alpha = -1;   // ≥ 0 (stage "alpha"): no search, this α only (ablations)
  int samples = 32;          // calibration samples (the first ones) used by both searches
  bool clip = true;          // run the clipping search
  int clip_grid = 20;        // p = 1 − i·max_shrink / clip_grid, i = 0 .. clip_grid − 1
  float max_shrink = 0.5f;
  bool quantize = true;      // false: leave scaled/clipped f32 weights
};

// What produces a scale group's input.
enum class AwqPrev { AttnNorm, FfnNorm, Linear };
// Where the block output error is measured. The residual stream entering the MLP does not depend on
// gate/up/down, so for those groups the block output error IS the MLP output error on the captured MLP
// inputs, computed without re-running attention (the cost of a block on long sequences).
enum class AwqInspect { Block, Mlp };

// One row of the architecture table (mlx-lm style: wiring as data).
struct AwqScaleGroup {
  const char* name;
  AwqPrev prev;
  LinearKind prev_linear;           // when prev == Linear
  std::vector<LinearKind> layers;   // the Linears reading the input (first one names the stats site)
  AwqInspect inspect;
};
// Llama family: attn norm → q,k,v; v_proj → o_proj; mlp norm → gate,up; up_proj → down_proj.
const std::vector<AwqScaleGroup>& awq_llama_groups();

// Search result of one scale group (a plain struct; awq_apply_scale mutates the model).
struct AwqScaleResult {
  std::string group;
  bool applicable = false;
  std::string skipped_because;     // when !applicable
  double alpha = 0;
  double err_rtn = 0;              // block output MSE at α = 0 (s = 1)
  double err_best = 0;             // at α*
  std::vector<float> scales;       // (in) s at α*
};

// The scale search for one group on block ctx.layer: `error()` measures the block output MSE of the block as
// it currently is (the group's Linears temporarily fake-quantized) against its float output.
AwqScaleResult awq_search_scale(BlockContext& ctx, const AwqScaleGroup& g, const AwqOptions& o,
                                const std::function<double()>& error);
// Folds s⁻¹ into the previous op and W ← W·diag(s) for the group's Linears.
void awq_apply_scale(Model& m, int layer, const AwqScaleGroup& g, const std::vector<float>& s);

// Clip search for one Linear W (rows × cols) with input Gram matrix G = XᵀX (cols × cols, f64):
// the clamp bound per (row, group), row-major (rows, ngroups).
std::vector<float> awq_search_clip(const float* W, int64_t rows, int64_t cols, const std::vector<double>& G,
                                   const AwqOptions& o);
// w ← clamp(w, −bound, bound) per (row, group).
void awq_apply_clip(float* W, int64_t rows, int64_t cols, const QuantGrid& grid, const std::vector<float>& bound);

// Per block: the scale search results (for reports and tests).
struct AwqBlockReport {
  int layer = 0;
  std::vector<AwqScaleResult> groups;
};

class AwqModifier;
std::unique_ptr<BlockModifier> make_awq_modifier(const nlohmann::json& stage);
// The reports a modifier made by make_awq_modifier has collected so far (empty for other modifiers).
const std::vector<AwqBlockReport>& awq_reports(const BlockModifier& m);

}  // namespace lmp

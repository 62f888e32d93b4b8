// ZeroQuant-FP (Wu, Yao, He 2023, "ZeroQuant-FP: A Leap Forward in LLMs Post-Training W4A8 Quantization Using
// Floating-Point Formats", arXiv 2307.09782): FP8 (E4M3) activations with FP4 (E2M1) or FP8 weights, and weight
// scales restricted to powers of two, so that turning an FP4 weight code into FP8 for an FP8×FP8 unit is an
// exponent shift (no multiply by an arbitrary scale; the paper's "M1" scale constraint).
// Weights: LowFloatMatrix (kernels/lowbit_float.h) with per-group scales 2^⌈log2(max|w|·clip / max finite)⌉
// (clip from quant/fp8's exponent-bias search, default on); "scales": "free" keeps f16 scales for comparison.
// Activations: dynamic per-token FP8 scaling (kernels/fp_act.h), "act": "none" leaves them f32.
// Stored: FpActMatrix{LowFloatMatrix} (scales still stored as f16, which holds every 2^k exactly).
// Recipe: {"modifier": "zeroquant_fp", "fp": "e2m1", "group": 32, "act": "e4m3", "scales": "pow2"}.
// CLI: lmpress quantize --method zeroquant_fp [--fp e2m1|e4m3] --group G [--act e4m3|none] [--scales pow2|free].
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "kernels/fp_act.h"

namespace lmp {

struct ZeroQuantFpOptions {
  LowFloat w = LowFloat::E2M1;
  int group = 32;
  bool act = true;  // FP8 E4M3 activations
  LowFloat act_fmt = LowFloat::E4M3;
  bool pow2 = true;
  bool bias_search = true;
};

WeightPtr zeroquant_fp_quantize(const float* W, int64_t rows, int64_t cols, const ZeroQuantFpOptions& o);

std::unique_ptr<BlockModifier> make_zeroquant_fp_modifier(const nlohmann::json& stage);

}  // namespace lmp

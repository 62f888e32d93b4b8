// The quantizer grid shared by RTN, GPTQ, AWQ and later methods: how one group of weights maps to
// b-bit integer codes and back. Conventions follow GPTQ's quant.py (Frantar et al.), with one change
// so that what is stored is exactly what was quantized:
//
//   maxq = 2^b − 1, codes q ∈ [0, maxq], dequant ŵ = (q − zero) · scale.
//   asymmetric: lo = min(min w, 0), hi = max(max w, 0)   (the range always contains 0)
//               scale = (hi − lo) / maxq,  zero = round(−lo / scale) ∈ [0, maxq]
//   symmetric:  M = max|w|, scale = 2M / maxq,  zero = 2^(b−1)  (GPTQ's (maxq + 1) / 2)
//   all-zero group (lo == hi == 0): lo = −1, hi = +1 as GPTQ does (codes are then all == zero, ŵ = 0).
//   q = clamp(round(w / scale) + zero, 0, maxq); round is half-to-even (torch.round, std::nearbyint).
//
// Scales are STORED as f16. find_params rounds the scale to f16 *upward* (the smallest f16 ≥ the exact
// scale), then computes zero and codes with that rounded scale, so dequantizing from the file is exact
// and, since the rounded scale still covers [lo, hi], every unclipped weight obeys |w − ŵ| ≤ scale / 2.
// (Round-to-nearest could shrink the scale and push the top of the range past maxq.) Scales are clamped
// to [2^-24, 65504], the f16 range.
//
// Optional MSE clipping (GPTQ's `mse` option, with the squared error instead of |·|^2.4): try the range
// shrunk by p = 1, 1 − 1/steps, ... down to 1 − max_shrink and keep the p with the lowest Σ (w − ŵ)².
// Clipped weights can then exceed the scale/2 bound.
#pragma once
#include <cmath>
#include <cstdint>

namespace lmp {

struct QuantGrid {
  int bits = 4;             // 2, 3, 4 or 8
  bool sym = false;         // symmetric (implicit zero 2^(b−1)) or asymmetric (stored zero)
  int group = 128;          // weights per group along a row (in_features); 0 = one group per row
  bool mse = false;         // MSE-optimal clipping search
  float max_shrink = 0.2f;  // search p down to 1 − max_shrink
  int shrink_steps = 100;   // p step is 1 / shrink_steps
  int maxq() const { return (1 << bits) - 1; }
  // Group size for a row of `cols` weights (group 0 → cols); number of groups per row.
  int64_t group_size(int64_t cols) const { return group > 0 ? group : cols; }
  int64_t ngroups(int64_t cols) const { return cols == 0 ? 0 : (cols + group_size(cols) - 1) / group_size(cols); }
};

struct GroupParams {
  float scale = 1;  // exactly representable in f16
  int zero = 0;     // ∈ [0, maxq]
};

// Params for one group w[0..n).
GroupParams find_params(const float* w, int64_t n, const QuantGrid& grid);
// Params for the range [lo, hi] (lo ≤ 0 ≤ hi for asym; for sym only max(|lo|, |hi|) matters).
GroupParams params_for_range(float lo, float hi, const QuantGrid& grid);

inline int quantize_value(float w, GroupParams p, int bits) {
  float q = std::nearbyint(w / p.scale) + float(p.zero);
  float maxq = float((1 << bits) - 1);
  return int(q < 0 ? 0 : (q > maxq ? maxq : q));
}
inline float dequant(int q, GroupParams p) { return float(q - p.zero) * p.scale; }

// Codes of one group: q[i] = quantize_value(w[i], p, bits).
void quantize_group(const float* w, int64_t n, GroupParams p, int bits, uint8_t* q);

}  // namespace lmp

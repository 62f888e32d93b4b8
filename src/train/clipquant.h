// Fake quantization with a learnable clipping range per group and optional learnable per-weight rounding
// offsets, on the asymmetric quant/grid (what QIntMatrix stores). Shared by OmniQuant's Learnable Weight
// Clipping (Shao et al. 2024) and SignRound's rounding + min/max tuning (Cheng et al. 2023).
// Per (row o, group g of `grid.group` input columns) of W (O, I), range factors a_lo, a_hi (O, G):
//   mn = min(min_g w, 0),  mx = max(max_g w, 0),  lo = a_lo·mn,  hi = a_hi·mx
//   (s, z) = params_for_range(lo, hi, grid)       s = f16_ceil((hi − lo)/maxq),  z = clamp(round(−lo/s), 0, maxq)
//   ŵ = (clamp(round(w/s + V) + z, 0, maxq) − z)·s        (V = 0 when no offsets are learned)
// Backward: the straight-through estimator on every rounding (round of w/s + V, round of z, f16 rounding of
// s: each passes its gradient as the identity), clamp as usual (no gradient where clipped):
//   inside the grid     ∂ŵ/∂w = 1, ∂ŵ/∂V = s, ∂ŵ/∂s = round(w/s + V) − w/s, ∂ŵ/∂z = 0
//   clipped to c∈{0,maxq}  ∂ŵ/∂s = c − z, ∂ŵ/∂z = −s
//   ∂s/∂hi = 1/maxq, ∂s/∂lo = −1/maxq;  ∂z/∂lo = −1/s − lo/(s²·maxq), ∂z/∂hi = lo/(s²·maxq) (0 when z clamps)
//   ∂lo/∂a_lo = mn, ∂hi/∂a_hi = mx, and lo, hi reach w through the group's min and max element (a_lo, a_hi).
// The stored matrix (clipquant_store) has exactly the codes, scales and zeros of the forward, so the packed
// int model computes the same Ŵ that was optimised.
#pragma once
#include <memory>

#include "kernels/qint.h"
#include "quant/grid.h"

namespace lmp::train {

// V (O, I) may be null (no offsets). Requires an asymmetric grid.
template <class T>
void clipquant_forward(T* What, const T* W, const T* V, const T* a_lo, const T* a_hi, int O, int I,
                       const QuantGrid& grid);
// Accumulates into each non-null gradient: dW (O, I), dV (O, I), da_lo, da_hi (O, G).
template <class T>
void clipquant_backward(T* dW, T* dV, T* da_lo, T* da_hi, const T* dWhat, const T* W, const T* V, const T* a_lo,
                        const T* a_hi, int O, int I, const QuantGrid& grid);
// The packed matrix of the forward at these parameters.
std::unique_ptr<QIntMatrix> clipquant_store(const float* W, const float* V, const float* a_lo, const float* a_hi,
                                            int O, int I, const QuantGrid& grid);

}  // namespace lmp::train

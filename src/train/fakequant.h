// Fake quantization for QAT and PEQA on the quant/grid conventions (quant/grid.h): per (row, group of
// `grid.group` input columns) a scale s and an integer zero z; codes q = clamp(round(w/s) + z, 0, maxq) and
// the dequantized weight ŵ = (q − z)·s, exactly what QIntMatrix stores (kernels/qint.h).
//
// QAT (LSQ, Esser et al. 2020, "Learned Step Size Quantization"; STE, Bengio et al. 2013):
//   forward   ŵ = (clamp(round(w/s) + z, 0, maxq) − z) · s
//   ∂ŵ/∂w  = 1 when 0 ≤ round(w/s) + z ≤ maxq (inside the grid), else 0          (straight-through)
//   ∂ŵ/∂s  = (q − z) − w/s inside the grid, (q − z) when clipped (q = 0 or maxq)  (LSQ step-size gradient)
//   (LSQ's gradient scale 1/√(n·maxq) is left to the optimizer: scales get their own learning rate.)
// PEQA (Kim et al. 2023, "Memory-Efficient Fine-Tuning of Compressed LLMs via sub-4-bit Integer
//   Quantization"): the codes q are frozen integers and only the scales learn: ŵ = (q − z)·s,
//   ∂L/∂s_g = Σ_{i∈g} ∂L/∂ŵ_i · (q_i − z).
// Initialisation: RTN (find_params per group), or BitDistiller's asymmetric clipping (Du et al. 2024):
//   the low and high ends of each group's range are shrunk independently, lo·a, hi·b with a, b ∈
//   {1, 0.95, ..., 0.5}, keeping the pair with the smallest Σ (w − ŵ)² (min–max RTN wastes levels on
//   outliers at 2–3 bits).
#pragma once
#include <cstdint>
#include <vector>

#include "quant/grid.h"

namespace lmp::train {

// Per-group parameters of W (O, I): s (O, G) and z (O, G), G = grid.ngroups(I).
void init_group_params(const float* W, int O, int I, const QuantGrid& grid, bool asym_clip, float* s, int* z);

template <class T>
void fakequant_forward(T* What /*(O,I)*/, const T* W, const T* s /*(O,G)*/, const int* z, int O, int I,
                       const QuantGrid& grid);
// dW += dŴ · STE mask ; ds += Σ_group dŴ · ∂ŵ/∂s (either may be null)
template <class T>
void fakequant_backward(T* dW, T* ds, const T* dWhat, const T* W, const T* s, const int* z, int O, int I,
                        const QuantGrid& grid);

template <class T>
void peqa_forward(T* What, const uint8_t* q /*(O,I)*/, const T* s, const int* z, int O, int I, const QuantGrid& grid);
template <class T>
void peqa_backward(T* ds, const T* dWhat, const uint8_t* q, const int* z, int O, int I, const QuantGrid& grid);

// Codes of W under (s, z) with s rounded to f16 first (what QIntMatrix::from_codes stores); s is updated in
// place to the rounded values.
void codes_for(const float* W, int O, int I, const QuantGrid& grid, float* s, const int* z, uint8_t* q);

}  // namespace lmp::train

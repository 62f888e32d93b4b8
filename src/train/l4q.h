// L4Q — Jeon et al. 2024, "L4Q: Parameter Efficient Quantization-Aware Fine-Tuning on LLMs" (arXiv 2402.04902).
// Quantization-aware training jointly with LoRA: the quantizer acts on the MERGED weight,
//   Ŵ = fq(W0 + (α/r)·B·A; s, z)        (W0 frozen; A, B and the group step sizes s learn; z fixed)
// with the straight-through estimator for round() and LSQ's gradient for s (train/fakequant.h), so the
// adapters learn what survives quantization. Backward: dŴ from the matmul, chained through fq to
// dWm (STE, zero where clipped) and ds (LSQ), then dB += (α/r)·dWm·Aᵀ and dA += (α/r)·Bᵀ·dWm.
// What is stored: the merged weight quantized with the learned scales, a QIntMatrix (codes + f16 scales +
// zeros) — the adapters are gone and no post-hoc requantization happens (QLoRA's path quantizes W0, trains
// adapters in float, and must requantize the merge, losing what the adapters learned below one step).
// Used by TrainModel when TrainSetup::l4q is set (`lmpress train l4q`).
#pragma once

namespace lmp::train {

// Wm (O, I) = W0 + scale · B (O, r) · A (r, I).
template <class T>
void l4q_merge(T* Wm, const T* W0, const T* A, const T* B, int O, int I, int r, double scale);

// Given dWm (O, I) (the gradient reaching the merged weight), accumulates dA (r, I) and dB (O, r)
// (either may be null).
template <class T>
void l4q_adapter_backward(T* dA, T* dB, const T* dWm, const T* A, const T* B, int O, int I, int r, double scale);

}  // namespace lmp::train

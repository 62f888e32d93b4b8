// SliceGPT — Ashkboos et al. 2024, "SliceGPT: Compress Large Language Models by Deleting Rows and Columns"
// (ICLR 2024, arXiv 2401.15024). Computational invariance: with RMSNorm's scale absorbed into the Linears
// that read it (q/k/v ← attention norm, gate/up ← MLP norm, LM head ← final norm), RMSNorm(x) commutes with
// any orthogonal Q (‖Qᵀx‖ = ‖x‖), so the residual stream may be expressed in a rotated basis:
//   embedding E ← E·Q₀;  input-side W ← W·Q (reads the stream);  output-side o/down ← Qᵀ·W (writes it).
// Each site (attention input, MLP input, of every block) gets its own Q = the eigenvectors of Σ zzᵀ of the
// residual stream z at that site over the calibration tokens (PCA, uncentered, eigh by LAPACK dsyevd),
// computed sequentially on the already-sliced model's signals. Consecutive sites differ in basis, so the
// residual path carries a shortcut matrix: attention add x ← Q_mlpᵀQ_attn·x + o, MLP add
// x ← Q_nextᵀQ_mlp·x + down (Block::attn_shortcut / mlp_shortcut, C'×C').
// Slicing keeps the top C' = ⌊(1 − s)·C⌋ principal directions: every stream-side dimension becomes C'.
// RMSNorm still normalises by the original width: the norm weights become √(C/C') and rms_norm_eps
// becomes eps·C/C', so x'/√(mean over C' + eps') · √(C/C') = x'/√(‖x'‖²/C + eps) exactly; with s = 0 the
// model is only rotated and its logits are unchanged (tested). After slicing, ‖x'‖ < ‖x‖: the dropped
// energy is the approximation, as in the paper.
// The LM head is untied (embedding and head are rotated differently).
// What is stored: hidden_size = C', per-block shortcut matrices as model.layers.N.{attn,mlp}_shortcut.weight
// (config.json "lmpress_residual_shortcuts": true), the rotated projections, eps and norm weights as above.
#pragma once
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"

namespace lmp {

struct SliceGptReport {
  int hidden_before = 0, hidden_after = 0;
  // Fraction of Σ eigenvalues kept at each site: embedding, then (attention out, MLP out) per block.
  std::vector<double> kept_energy;
};

// C' = ⌊(1 − s)·C⌋; throws unless 0 ≤ s < 1 and C' ≥ 1.
int sliced_width(int hidden, double sparsity);

// Rotates and slices m in place (sparsity 0 = rotation only). The model must not be sliced already.
SliceGptReport slicegpt(Model& m, const Samples& samples, double sparsity, bool progress = true);

}  // namespace lmp

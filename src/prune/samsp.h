// SAMSP (Shao, Chen, Luo, Chen, Wong 2023, "One-shot sensitivity-aware mixed sparsity pruning for large
// language models", arXiv 2310.09499): a Hessian-based sensitivity of every weight matrix decides how sparse it
// is pruned, under a global target, and SparseGPT prunes each matrix at its own sparsity.
//   sensitivity:  the OBS error of removing weight w_ij alone is ε_ij = w_ij² / (2 [H⁻¹]_jj), H = 2/n·XᵀX +
//                 λI (SparseGPT's damping); removing the z least salient weights of matrix l costs
//                 E_l(z) = Σ of its z lowest ε — the matrix's sensitivity curve (computed once on the model
//                 as it enters the stage, blocks run forward on the calibration inputs, as OWL does).
//   allocation:   minimise Σ_l E_l(z_l) subject to Σ_l z_l = Z = ⌊p · Σ_l n_l⌋ (the global target, exact) and
//                 z_l/n_l ∈ [p − Δ, p + Δ]. E_l is convex (sorted ε), so the optimum is a global threshold:
//                 z_l = ⌊(p − Δ)·n_l⌋ plus the Z − Σ⌊(p − Δ)·n_l⌋ lowest ε over all matrices among the ones each
//                 matrix may still give up. Less sensitive matrices (small ε) get more sparsity.
//   pruning:      SparseGPT (prune/sparsegpt.h) with exactly z_l weights pruned (prune_total), spread evenly
//                 over rows (mask "row", default, like lmpress's SparseGPT) or chosen per lazy block over all rows
//                 (mask "block", the SparseGPT reference code's mask); sequentially, each block on the outputs
//                 of the already-pruned ones.
// Stored: as SparseGPT (sparse bitmap at sparsity ≥ sparse_min, else dense f32 with zeros).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

// ε_ij · 2 = w_ij² / [H⁻¹]_jj for W (rows × cols) and H (cols × cols, undamped), row-major.
std::vector<float> obs_saliency(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H, double damp,
                                const std::string& what);

// Pruned count z_l of each matrix from the saliencies of its weights (see the header comment).
std::vector<int64_t> samsp_allocate(const std::vector<std::vector<float>>& saliency, double target, double delta);

std::unique_ptr<BlockModifier> make_samsp_modifier(const nlohmann::json& stage);

}  // namespace lmp

// OWL — Outlier Weighed Layerwise sparsity (Yin et al. 2023, "Outlier Weighed Layerwise Sparsity (OWL): A
// Missing Secret Sauce for Pruning LLMs to High Sparsity", arXiv 2310.05175). Layers holding more outlier
// features are pruned less. With Wanda's score A_ij = |W_ij|·‖X_j‖₂ over all of layer l's Linears:
//   D_l = #{A_ij > M · mean(A)} / #A                               (layer outlier ratio, M = 5)
//   d_l = 2λ · (D_l − min D) / (max D − min D)                     (λ = 0.08)
//   density_l = d_l − mean(d) + (1 − target),  sparsity_l = 1 − density_l ∈ [target − λ, target + λ]
// so the mean sparsity over layers is the target. Computed once on the dense model before any block is
// pruned (the pipeline hands block 0's inputs; the dense blocks are run forward here).
#pragma once
#include <vector>

#include "calib/stats.h"
#include "calib/targets.h"
#include "model/model.h"

namespace lmp {

// Runs block l of the model as it is on xs ((N) × (L, C)), in place (xs become block l's outputs), and
// returns the statistics `req` of its Linears' inputs over all samples (merged in sample order). The dense
// pre-passes of OWL and SAMSP (prune/samsp.h) walk the model with it.
BlockStats block_stats_and_advance(const Model& m, int l, std::vector<std::vector<float>>& xs, int L,
                                   const StatsRequest& req);
// D_l for every layer: runs the dense model's blocks on `inputs` ((N) × (L, C), block 0's inputs).
std::vector<double> owl_outlier_ratios(const Model& m, const std::vector<std::vector<float>>& inputs, int L,
                                       double M, const Targets& targets);
// sparsity_l from the ratios (all equal ratios → uniform target).
std::vector<double> owl_sparsities(const std::vector<double>& ratios, double target, double lambda);

}  // namespace lmp

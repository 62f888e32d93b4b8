// Wanda (Sun, Liu, Bair, Kolter 2024, "A Simple and Effective Pruning Approach for Large Language Models",
// ICLR 2024, arXiv 2306.11695): prune by weights and activations, no weight update.
//   S_ij = |W_ij| · ‖X_j‖₂                 (‖X_j‖₂ over all calibration tokens: LinearStats::l2_norm)
//   per output row i, the ⌊p · in⌋ lowest S_ij are zeroed (comparison group = one row; §3 of the paper);
//   N:M: in each group of M inputs of a row, the M − N lowest.
// Stored: prune/mask.h store_pruned.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "prune/mask.h"

namespace lmp {

// S (rows × cols) = |W| · xnorm (xnorm: cols).
std::vector<float> wanda_scores(const float* W, int64_t rows, int64_t cols, const std::vector<double>& xnorm);
std::vector<uint8_t> wanda_mask(const float* W, int64_t rows, int64_t cols, const std::vector<double>& xnorm,
                                const SparsitySpec& spec);

std::unique_ptr<BlockModifier> make_wanda_modifier(const nlohmann::json& stage);

}  // namespace lmp

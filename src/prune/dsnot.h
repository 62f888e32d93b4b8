// DSnoT — Dynamic Sparse No Training (Zhang, Zhao, Lin, et al. 2023, "Dynamic Sparse No Training: Training-Free
// Fine-tuning for Sparse LLMs", ICLR 2024, arXiv 2310.08915). Starts from a mask (Wanda, magnitude or
// SparseGPT's w²/[U]²_jj score, no weight update) and refines it row by row by swapping one pruned and one
// kept weight per cycle, steered by the expected reconstruction error of the row
//   ε_i = E[(W_i − Ŵ_i)·x] = Σ_{j pruned} W_ij · x̄_j          (x̄_j: mean activation of input j)
// Each cycle (per row, until the row stops or max_cycles):
//   grow:   ε > 0 → the pruned weight with the largest W_ij x̄_j / Var(x_j), ε ≤ 0 → the smallest
//           (reviving it removes its term from ε; the variance damps unreliable channels)
//   prune:  unstructured: among kept weights ordered by Wanda's |W_ij|·‖X_j‖₂, ε < 0 → the least important
//           one with W_ij x̄_j > 0, else the least important with W_ij x̄_j < 0 (pruning it adds its term);
//           N:M: the least important kept weight of the revived weight's group (the pattern stays N:M)
//   accept the swap only while |ε| > threshold and ε keeps its initial sign; otherwise the row stops.
// Stored: prune/mask.h store_pruned.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "prune/mask.h"

namespace lmp {

struct DsnotOptions {
  int max_cycles = 50;
  double threshold = 0.1;   // stop when |ε| ≤ threshold
  double var_power = 1.0;   // grow score divides by Var(x_j)^var_power
  NMPattern nm;
};

// Refines mask (rows × cols, 1 = pruned) of W in place. importance (rows × cols): the pruning order for kept
// weights (Wanda's score; N:M: the initial score); mean, var (cols): activation mean and variance.
// Returns the number of swaps.
int64_t dsnot_refine(const float* W, int64_t rows, int64_t cols, const float* importance,
                     const std::vector<double>& mean, const std::vector<double>& var, const DsnotOptions& o,
                     uint8_t* mask);

std::unique_ptr<BlockModifier> make_dsnot_modifier(const nlohmann::json& stage);

}  // namespace lmp

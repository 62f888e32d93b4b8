// Depth pruning — Kim et al. 2024, "Shortened LLaMA: Depth Pruning for Large Language Models"
// (arXiv 2402.02834). Whole decoder blocks are removed, so every removed block is work that no longer
// runs (attention, MLP and its KV cache), unlike width pruning at small batch.
// Importance of block i = the calibration perplexity of the model with block i alone removed (the paper's
// PPL criterion; one-shot ranking): blocks whose removal hurts least go first. ⌊sparsity · L⌋ blocks are
// removed; the rest are renumbered and the result is an ordinary (shallower) model.
// What is stored: nothing new — a model with fewer layers (per-layer widths kept when they differ).
#pragma once
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"

namespace lmp {

struct DepthReport {
  double base_nll = 0;                // calibration NLL of the full model
  std::vector<double> nll_without;    // (L): calibration NLL with block i removed
  std::vector<int> removed;           // original indices, ascending
};

// Number of blocks ⌊sparsity · L⌋ to remove; throws unless it is ≥ 1 and leaves ≥ 1 block.
int depth_blocks_to_remove(int n_layers, double sparsity);

// Removes blocks (original indices) and renumbers the rest; throws if none would remain.
void remove_blocks(Model& m, std::vector<int> blocks);

// Ranks blocks by calibration NLL without each, removes the ⌊sparsity · L⌋ least important ones.
DepthReport depth_prune(Model& m, const Samples& samples, double sparsity, bool progress = true);

}  // namespace lmp

// GUM — Globally Unique Movement (Santacroce, Wen, Shen, Li 2023, "What Matters In The Structured Pruning of
// Generative Language Models?", arXiv 2302.03773): structured pruning of MLP neurons that scores each neuron
// by its sensitivity AND its uniqueness, so that neurons whose outputs other neurons already carry go first.
// One-shot form on calibration data (no fine-tuning run; the paper scores during fine-tuning by movement):
//   a_j (T)        neuron j's activation silu(gate_j·x)·(up_j·x) over the T calibration tokens (down_proj's input)
//   sensitivity    s_j = ‖a_j‖² · ‖W_down[:, j]‖²   the block-output energy neuron j contributes, i.e. the
//                  squared change of the MLP output over the calibration tokens when j alone is removed
//   uniqueness     u_j = 1 − max_{k kept, k ≠ j} |cos(a_j, a_k)|   (a duplicated neuron has u = 0)
//   score          s_j · u_j; greedily, the lowest-scoring neuron is removed and the uniqueness of the rest is
//                  recomputed against the neurons still kept (so of two duplicates only one goes).
// ⌊sparsity · F⌋ neurons are removed from every targeted layer's MLP (at least one kept).
// Stored: a smaller dense model (rows of gate/up and columns of down removed; per-layer widths in config.json,
// prune/structured_common.h), no bias compensation.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

// Neurons to remove, in removal order, from the Gram matrix G = AᵀA of the activations (F × F, row-major)
// and the squared column norms of W_down (F).
std::vector<int> gum_removal_order(const std::vector<double>& gram, const std::vector<double>& down_col2, int64_t F,
                                   int64_t count);

std::unique_ptr<BlockModifier> make_gum_modifier(const nlohmann::json& stage);

}  // namespace lmp

// Magnitude pruning (Han et al. 2015, "Learning both Weights and Connections for Efficient Neural Networks";
// the one-shot LLM baseline of Frantar & Alistarh 2023 and Sun et al. 2024): score |W_ij|, the lowest pruned,
// no update, no calibration. Scope "matrix" (default, the reference: one threshold per matrix) or "row"
// (the lowest fraction of each output row); N:M per group of M inputs.
// Stored: prune/mask.h store_pruned (N:M format, SparseBitmap, or dense with zeros).
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "prune/mask.h"

namespace lmp {

enum class MagnitudeScope { Matrix, Row };

// Mask (rows × cols, 1 = pruned) of W for `spec` (N:M ignores the scope).
std::vector<uint8_t> magnitude_mask(const float* W, int64_t rows, int64_t cols, const SparsitySpec& spec,
                                    MagnitudeScope scope);

std::unique_ptr<BlockModifier> make_magnitude_modifier(const nlohmann::json& stage);

}  // namespace lmp

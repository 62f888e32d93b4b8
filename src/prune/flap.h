// FLAP — An et al. 2024, "Fluctuation-based Adaptive Structured Pruning for Large Language Models"
// (AAAI 2024, arXiv 2312.11983). Retraining-free width pruning:
//  - fluctuation metric (WIFV) of input channel j of o_proj / down_proj:
//      S_j = Var_tokens(x_j) · ‖W[:, j]‖²   (how much removing the channel moves the output around its mean)
//  - scores are standardized ((S − mean) / std) so that attention and MLP units compare on one scale, then
//    ranked globally (adaptive structure: how much each layer and module keeps is decided by the ranking).
//    Scope Layer (default) standardizes within each layer and module; scope Global within each module type
//    over all layers. On stories260K (FLAP 20%, 64×512 calibration tokens) Global piles the pruning onto the
//    early layers, whose activations are small (layer 0's MLP kept 38 of 172 channels), and gives ppl 13.7;
//    Layer gives 9.98. An attention unit's score is the mean of its channels' standardized scores;
//  - units are removed lowest score first until the removed parameters reach sparsity × the parameters of
//    all q/k/v/o/gate/up/down projections (a unit that would overshoot by more than half its size is
//    skipped); every layer keeps ≥ 1 attention unit and ≥ 1 MLP channel;
//  - bias compensation: a removed channel is replaced by its mean, b += Σ_removed E[x_j] · W[:, j], added
//    as a bias on o_proj / down_proj (the expected output is preserved).
// GQA rule: the attention unit is a whole KV group (one k/v head and its H/KV query heads). Removing query
// heads alone would leave groups of unequal size, which the h → h / (H/KV) head mapping cannot express;
// keeping all KV heads would waste the cache. Groups as units keep the mapping exact, shrink the KV cache
// too, and reduce to single heads for multi-head attention (KV = H).
// What is stored: a smaller dense model; per-layer head / kv-head / MLP widths in config.json
// (lmpress_layer_*), o_proj/down_proj biases from the compensation.
#pragma once
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"

namespace lmp {

// Per layer: mean and variance over calibration tokens of o_proj's input (H·hs) and down_proj's (F).
struct FlapStats {
  std::vector<std::vector<double>> o_mean, o_var, down_mean, down_var;  // (L) × (H·hs) / (F)
};
FlapStats flap_statistics(const Model& m, const Samples& samples, bool progress = true);

struct FlapPlan {
  std::vector<std::vector<int>> keep_groups;    // (L) × kept KV groups, ascending
  std::vector<std::vector<int>> keep_channels;  // (L) × kept MLP channels, ascending
  int64_t prunable_params = 0;                  // parameters of all projections before
  int64_t target_params = 0, removed_params = 0;
};
enum class FlapScope { Layer, Global };  // where scores are standardized
FlapScope parse_flap_scope(const std::string& s);  // "layer" | "global"

// Chooses what to remove (scores as above); throws unless 0 < sparsity < 1.
FlapPlan flap_plan(const Model& m, const FlapStats& st, double sparsity, FlapScope scope = FlapScope::Layer);
// Removes what the plan drops (with bias compensation when asked). Throws if a layer would keep no KV group
// or no MLP channel, or if the plan does not fit the model.
void flap_apply(Model& m, const FlapStats& st, const FlapPlan& p, bool bias_compensation = true);

// statistics → plan → apply.
FlapPlan flap_prune(Model& m, const Samples& samples, double sparsity, bool bias_compensation = true,
                    FlapScope scope = FlapScope::Layer, bool progress = true);

}  // namespace lmp

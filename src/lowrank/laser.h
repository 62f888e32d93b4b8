// LASER (Sharma, Ash, Misra 2024, "The Truth is in There: Improving Reasoning in Language Models with
// Layer-Selective Rank Reduction", arXiv 2312.13558). One intervention (ℓ, τ, ρ) replaces the matrix of type
// τ (q/k/v/o/gate/up/down) in layer ℓ by its rank-k truncated SVD, k = max(1, ⌊keep·min(m, n)⌋) with
// keep = 1 − ρ (the paper keeps 1–10% of the rank, i.e. ρ = 0.9–0.99). Nothing is fitted; the intervention
// is chosen by a search scored on held-out text:
//   1. score the unmodified model (calibration-window ppl; the calibration text, never the eval text);
//   2. for every (ℓ, τ, keep) of the grid, apply that single intervention, score, undo;
//   3. return the best single intervention — none when no intervention beats the unmodified model — and,
//      optionally, stack more greedily: walk the other candidates best-first (one per Linear) and keep each
//      one that lowers the stacked model's ppl, up to `stack` interventions.
// The search returns the full table; the chosen interventions go into the recipe stage that applies them
// (data-free). Stored: a LowRankMatrix of f32 factors for each intervened Linear.
//
// Recipe stage: {"modifier": "laser", "interventions": [{"linear": "model.layers.3.mlp.up_proj", "keep": 0.05}]}
// (a "search" field, the table that chose them, is carried along for the record and ignored).
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "calib/targets.h"
#include "lowrank/truncated_svd.h"

namespace lmp {

// max(1, ⌊keep·min(m, n)⌋); throws for keep ∉ (0, 1).
int64_t laser_rank(double keep, int64_t m, int64_t n, const std::string& what = "laser");

struct LaserIntervention {
  std::string linear;
  double keep = 0;
};
struct LaserCandidate {
  LaserIntervention iv;
  int64_t rank = 0;
  double ppl = 0;
};
struct LaserSearch {
  double base_ppl = 0;
  std::vector<LaserCandidate> table;         // every candidate, sorted by ppl (best first)
  std::vector<LaserIntervention> chosen;     // empty when nothing beats the unmodified model
  double chosen_ppl = 0;                     // of the model with every chosen intervention
  nlohmann::json to_json() const;
};

// Searches over the targeted Linears of m (left unchanged) × the keep fractions, scored on the windows.
LaserSearch laser_search(Model& m, const Samples& windows, const std::vector<double>& keeps, const Targets& targets,
                         int stack = 1, bool progress = true);

std::unique_ptr<BlockModifier> make_laser_modifier(const nlohmann::json& stage);

}  // namespace lmp

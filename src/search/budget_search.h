// Budgeted mixed-precision search (issue 9, part 3): choose one quantization setting (bits × group) per
// Linear so that the projections fit a byte budget with the least predicted loss.
//  1. Sensitivity: every Linear is quantized ALONE with every candidate setting (RTN, the quant/grid of
//     QIntMatrix) and scored by the mean per-token KL(p_orig ‖ p_mod) of the next-token distributions over
//     a few calibration windows (every position of every window; cheaper and smoother than ppl, and ≥ 0).
//     Bytes of each candidate are the exact WeightMatrix::nbytes() of the quantized matrix.
//  2. Choice: additive loss model, Σ KL minimised subject to Σ bytes ≤ budget — an exact multiple-choice
//     knapsack by dynamic programming over bytes in units of u bytes (u = 1 unless the budget exceeds
//     max_units bytes; costs are rounded UP to units, so the choice always meets the budget in real bytes,
//     and with u = 1 it is the exact optimum).
//  3. The recipe: one stage per distinct setting, its `targets` an anchored regex of exact Linear names.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calib/calib_data.h"
#include "model/model.h"

namespace lmp {

struct QuantCandidate {
  int bits = 4;
  int group = 128;  // 0 = one group per row
  std::string label() const;  // "int4_g128"
};

// Every bits × group combination (bits, groups as given on the command line).
std::vector<QuantCandidate> candidate_grid(const std::vector<int>& bits, const std::vector<int>& groups);

struct LayerSensitivity {
  std::string name;             // "model.layers.3.mlp.down_proj"
  int layer = 0, kind = 0;
  int64_t weights = 0;          // rows × cols
  std::vector<int64_t> bytes;   // per candidate, exact nbytes()
  std::vector<double> kl;       // per candidate: mean KL(orig ‖ this Linear alone quantized), nats/token
};

// Quantizes each Linear alone with each candidate (RTN) and measures the output KL over the windows.
// m is restored exactly (the original weights are swapped back). Throws for unsupported candidates.
std::vector<LayerSensitivity> measure_sensitivity(Model& m, const Samples& windows,
                                                  const std::vector<QuantCandidate>& cands, bool progress);

struct KnapsackResult {
  std::vector<int> choice;  // one option index per item
  int64_t bytes = 0;        // Σ real cost of the choice (≤ budget)
  double loss = 0;          // Σ loss of the choice
  int64_t unit = 1;         // DP byte unit used
};

// Exact multiple-choice knapsack: minimise Σ loss[i][choice_i] s.t. Σ cost[i][choice_i] ≤ budget, by DP over
// ⌊budget / unit⌋ units with unit = max(1, ⌈budget / max_units⌉) (costs rounded up; should that overflow, the
// cheapest option of every item). Throws lmp::Error when even the cheapest options do not fit.
KnapsackResult choose_under_budget(const std::vector<std::vector<int64_t>>& cost,
                                   const std::vector<std::vector<double>>& loss, int64_t budget,
                                   int64_t max_units = int64_t(1) << 20);

// Bytes allowed for the projections at `bpw` bits per weight (floor of bpw × weights / 8).
int64_t budget_bytes(const Model& m, double bpw);

// The recipe of a choice: one stage {"modifier": method, "bits", "group", "targets": "^(a|b|...)$"} per
// distinct setting, stages ordered by bits then group.
nlohmann::json search_recipe_stages(const std::vector<LayerSensitivity>& layers,
                                    const std::vector<QuantCandidate>& cands, const std::vector<int>& choice,
                                    const std::string& method);

}  // namespace lmp

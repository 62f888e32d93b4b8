// Shared machinery of the low-rank searches (ASVD's sensitivity-based rank allocation, LASER's intervention
// search): score the whole model on token windows with one Linear temporarily replaced, collect every
// Linear's input statistics of the model as it is, and spend a parameter budget over per-layer options.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "calib/stats.h"
#include "model/model.h"

namespace lmp {

// Mean negative log-likelihood of the model over windows (each a sample of L tokens, scored as in the
// perplexity protocol: every token but the first); ppl = exp(nll).
double windows_nll(const Model& m, const Samples& windows);

// Replaces lin.w for the guard's lifetime; the original weight is put back by the destructor.
class WeightSwap {
 public:
  WeightSwap(Linear& lin, WeightPtr w) : lin_(lin), saved_(std::move(lin.w)) { lin_.w = std::move(w); }
  ~WeightSwap() { lin_.w = std::move(saved_); }
  WeightSwap(const WeightSwap&) = delete;
  WeightSwap& operator=(const WeightSwap&) = delete;

 private:
  Linear& lin_;
  WeightPtr saved_;
};

// Per-block input statistics (one BlockStats per layer) of the model as it is, over all windows
// (accumulated per window and merged in window order, so the sums are deterministic).
std::vector<BlockStats> collect_block_stats(const Model& m, const Samples& windows, const StatsRequest& req);

// A budgeted choice among per-layer options: option o of item i costs cost[o] parameters and loses loss[o]
// (e.g. Δnll when only that layer is compressed with option o). Returns one option index per item with
// Σ cost ≤ budget, chosen greedily from each item's most expensive option: repeatedly take the move to a
// cheaper option with the smallest loss increase per parameter saved (the Lagrangian exchange rate), until
// the budget is met. Throws lmp::Error when even the cheapest options exceed the budget.
struct BudgetItem {
  std::string name;
  std::vector<int64_t> cost;
  std::vector<double> loss;
};
std::vector<int> allocate_budget(const std::vector<BudgetItem>& items, int64_t budget);

}  // namespace lmp

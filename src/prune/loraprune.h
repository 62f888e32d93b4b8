// LoRAPrune — Zhang et al. 2023, "LoRAPrune: Structured Pruning Meets Low-Rank Parameter-Efficient Fine-Tuning"
// (arXiv 2305.18403). Structured pruning whose importance comes from the LoRA adapters of a fine-tuning run,
// so no gradient of the frozen base weight is ever formed:
//  - per weight, the first-order importance |W' ⊙ ∇W'| of the merged weight W' = W + s·B·A (s = α/r) is
//    estimated with ∇W' replaced by the change a LoRA step makes to the merge, s·(∇B·A + B·∇A):
//        Î = | (W + s·B·A) ⊙ s·(∇B·A + B·∇A) |
//    (identity: ∇B = s·∇W'·Aᵀ and ∇A = s·Bᵀ·∇W', so the estimate is s²·(∇W'·AᵀA + BBᵀ·∇W'), the exact gradient
//    seen through the adapters' row/column spaces);
//  - grouped per structure and summed: a KV group (its q rows, one k and one v row block, its o columns —
//    the GQA unit of prune/flap.h) or an MLP channel (gate and up row j, down column j), divided by the
//    group's parameter count so heads and channels rank on one scale, and smoothed over steps by a moving
//    average Ī ← λ·Ī + (1 − λ)·Î;
//  - iterative: every `every` steps during the first `prune_steps` the removed-parameter target rises
//    linearly to sparsity × (all q/k/v/o/gate/up/down parameters), and the lowest-Ī units are masked
//    (their W rows/columns and their B rows / A columns zeroed, re-zeroed after each optimizer step) until it
//    is met (FLAP's rule: a unit overshooting by more than half its size is skipped; every layer keeps ≥ 1
//    KV group and ≥ 1 channel); the remaining steps are recovery fine-tuning of the masked model;
//  - at the end LoRA is merged and the masked units are removed (prune/flap.h's flap_apply, no bias
//    compensation).
// What is stored: a structurally smaller dense model (per-layer head / kv-head / MLP widths in config.json),
// exactly the masked merged model with the zero rows/columns taken out.
// Reached by `lmpress train loraprune --sparsity P ...` (LoRA on every projection).
#pragma once
#include <memory>
#include <vector>

#include "prune/flap.h"
#include "train/tmodel.h"

namespace lmp {

struct LoraPruneOptions {
  double sparsity = 0.2;
  int prune_steps = 50;  // pruning happens during steps [0, prune_steps); later steps only recover
  int every = 5;         // a pruning event every `every` steps
  double ema = 0.9;      // λ of the moving average
  bool verbose = false;  // one stderr line per pruning event
};

// Per-weight LoRA importance of one Linear: imp (O, I) = |(W + s·B·A) ⊙ s·(dB·A + B·dA)|.
void lora_weight_importance(float* imp, const float* W, const float* A, const float* B, const float* dA,
                            const float* dB, int O, int I, int r, double s);

class LoraPruner {
 public:
  LoraPruner(train::TrainModel<float>& tm, const LoraPruneOptions& o);
  // Group importances of the current gradients (per layer: KV groups, then channels), normalised by size.
  std::vector<std::vector<double>> group_importance() const;
  void after_backward(int step);  // moving average of group_importance()
  void after_step(int step);      // pruning event when due, then masks re-applied
  // Masks every unit not yet masked with the lowest average until the removed parameters reach `target`.
  void prune_to(int64_t target);
  void apply_masks();
  FlapPlan plan() const;                                     // kept KV groups / channels
  std::unique_ptr<Model> finish(const Model& src) const;     // merged, masked units removed
  int64_t prunable_params() const { return prunable_; }
  int64_t removed_params() const { return removed_; }

 private:
  train::TrainModel<float>& tm_;
  LoraPruneOptions o_;
  int64_t prunable_ = 0, removed_ = 0;
  std::vector<std::vector<double>> avg_;     // (L) × (KV + F)
  std::vector<std::vector<char>> masked_;    // (L) × (KV + F)
  bool have_avg_ = false;
};

}  // namespace lmp

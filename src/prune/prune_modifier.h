// What every pruning modifier shares: its recipe arguments (sparsity or N:M, OWL, stored value type), the
// loop over a block's targeted Linears, OWL's per-layer sparsities, and the choice of stored form
// (prune/mask.h store_pruned). A method supplies one function: prune one Linear's weights.
//
// Stage arguments (all methods):
//   "sparsity": 0.5            fraction of weights pruned per matrix, in (0, 1) (ignored with "nm")
//   "nm": "2:4"                N kept of every M consecutive inputs (2:4, 4:8 have stored formats)
//   "owl": true                OWL non-uniform layer sparsity (prune/owl.h), "owl_lambda": 0.08, "owl_m": 5
//   "values": "f32"|"f16"      value type of the sparse stored forms
//   "sparse_min": 0.3          unstructured matrices with at least this sparsity are stored sparse
//                              (SparseBitmap), others dense f32 with zeros
//   "targets", "ignore"        which Linears (calib/targets.h)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "calib/targets.h"
#include "prune/mask.h"

namespace lmp {

struct PruneArgs {
  SparsitySpec spec;
  bool owl = false;
  double owl_lambda = 0.08, owl_m = 5;
  StoreOptions store;
};
PruneArgs prune_args_from_stage(const nlohmann::json& stage, const char* modifier);

class PruneModifier : public BlockModifier {
 public:
  PruneModifier(const nlohmann::json& stage, const char* name);
  std::string name() const override { return name_; }
  void apply(BlockContext& ctx) override;
  const PruneArgs& args() const { return args_; }

 protected:
  // Prunes W (out × in, row-major, dense f32) of Linear `kind` to `spec` and returns its stored form
  // (usually store_pruned(…, args().store, …)). `what` names the Linear in errors.
  virtual WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows,
                                 int64_t cols, const SparsitySpec& spec, const std::string& what) = 0;
  // Called once per block before its Linears are pruned (e.g. DSnoT collects activation means).
  virtual void begin_block(BlockContext& ctx) {}
  StoreOptions store_for(const SparsitySpec& spec) const;

  PruneArgs args_;
  Targets targets_;

 private:
  std::string name_;
  std::vector<double> owl_sparsity_;  // per layer, when args_.owl
};

}  // namespace lmp

// SequentialPipeline (DESIGN.md): calibration samples are embedded once; then for each decoder block i:
// run block i on the captured inputs with hooks that accumulate per-Linear statistics, let the modifier
// rewrite block i, re-run block i to produce the inputs of block i+1. Peak memory is one block's
// activations for all samples plus the model, not all blocks' activations.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "calib/calib_data.h"
#include "calib/stats.h"
#include "model/model.h"

namespace lmp {

// What a modifier sees of the block it is about to rewrite.
struct BlockContext {
  Model& model;
  int layer;
  // (N) × (L, C): the block's input residual streams. Under data-parallel calibration (calib/dist.h) these
  // are this rank's shard only; `stats` are always over all samples. A modifier that searches over inputs
  // or run_block (AWQ) therefore sees rank-local samples, and the pipeline's cross-rank weight checksum
  // then stops the run with a clear error: run such modifiers with one rank.
  const std::vector<std::vector<float>>& inputs;
  const BlockStats& stats;
  int seqlen;
  // Runs block `layer` as it is now on sample s's input; out (L, C). Used by output-error searches (AWQ).
  std::function<void(int s, float* out)> run_block;
  // Runs block `layer` on sample s and calls `hook` on each Linear's input (e.g. to capture o_proj/down inputs).
  std::function<void(int s, float* out, const std::function<void(LinearKind, const float*, int64_t)>& hook)>
      run_block_hooked;
};

class BlockModifier {
 public:
  virtual ~BlockModifier() = default;
  virtual std::string name() const = 0;
  virtual StatsRequest stats_request() const = 0;
  // Data-free modifiers (RTN, magnitude pruning, plain SVD) run without calibration samples; their
  // context then has no inputs and empty statistics.
  virtual bool needs_calibration() const { return true; }
  // Called once after every block: modifiers that also compress the (untied) LM head do it here.
  virtual void apply_head(Model& m) {}
  // Rewrites ctx.model.blocks[ctx.layer] (weights, formats, norms) using the statistics.
  virtual void apply(BlockContext& ctx) = 0;
};

struct PipelineOptions {
  bool progress = true;
};

struct PipelineReport {
  double seconds = 0;
  long peak_rss = 0;
  size_t activation_bytes = 0;  // the captured inputs held at once
};

// Runs the modifiers (in order, each seeing statistics collected after the previous one applied) on every
// block. Blocks are processed in order, each calibrated on the outputs of the already-modified blocks.
PipelineReport run_sequential(Model& m, const Samples& samples, const std::vector<BlockModifier*>& mods,
                              const PipelineOptions& o = {});
// Runs data-free modifiers block by block (no samples, no statistics).
void run_data_free(Model& m, const std::vector<BlockModifier*>& mods, const PipelineOptions& o = {});

}  // namespace lmp

// Block-wise reconstruction: the machinery OmniQuant (quant/omniquant.h) and SignRound (quant/signround.h)
// share. For decoder block l, learnable quantization parameters θ are optimised with gradients on
//     L(θ) = mean ‖F_l(X; Ŵ(θ)) − F_l(X; W)‖²
// X: the block's calibration inputs as the SequentialPipeline hands them over (outputs of the already-quantized
// upstream blocks); targets F_l(X; W): the float block's outputs on those X, as both papers do. A method is a
// BlockQuantizer: θ ↦ the block's effective weights Ŵ (fake-quantized Linears, possibly transformed norms) and
// the chain rule back from dL/dŴ. Forward and backward of the block are train/block.h's (the TrainModel code).
// Steps draw `batch` samples at a time from a seeded per-epoch shuffle; the optimizer is train/optim.h's
// (AdamW for OmniQuant; Lion with β1 = 0 is exactly signed gradient descent, SignRound's update).
// Data-parallel calibration (calib/dist.h) hands each rank only its shard of X: run these methods with one rank
// (the pipeline's cross-rank checksum stops the run otherwise, as for AWQ).
#pragma once
#include <array>
#include <string>
#include <vector>

#include <memory>

#include "calib/pipeline.h"
#include "calib/targets.h"
#include "train/optim.h"

namespace lmp::train {

// A block's effective weights (or their gradients): the seven Linears (out, in) row-major and the two norms.
struct BlockWeights {
  std::array<std::vector<float>, kLinearsPerBlock> W;
  std::vector<float> attn_norm, ffn_norm;
  static BlockWeights of(const Block& b);  // dense f32 values of a block as it stands
  void zero();                             // every entry 0 (shapes kept)
};

class BlockQuantizer {
 public:
  explicit BlockQuantizer(const Block& b) : base(BlockWeights::of(b)) {}
  virtual ~BlockQuantizer() = default;
  virtual std::string name() const = 0;
  // θ → effective weights; w arrives shaped like base.
  virtual void forward(BlockWeights& w) = 0;
  // dL/dŴ → params[i].g (accumulated). Only the entries the quantizer asked for (needs_grad) are valid.
  virtual void backward(const BlockWeights& dw) = 0;
  virtual bool needs_grad(LinearKind k) const = 0;
  virtual bool needs_norm_grad() const { return false; }
  virtual void project() {}  // after each optimizer step: keep θ in its domain
  // Writes the learned block (stored formats, folded norms) into b.
  virtual void store(Block& b) = 0;
  // Range [min, max] of each learned tensor in its natural domain (e.g. γ = σ(γ̃)), for reports and tests.
  struct Range {
    std::string name;
    double lo = 0, hi = 0;
  };
  virtual std::vector<Range> ranges() const;

  // Adds a trainable tensor of θ (no weight decay); returns its index in params.
  int add_param(const std::string& name, std::vector<float> init, float lr_mult = 1);

  BlockWeights base;                 // the float block
  std::vector<Param<float>> params;  // θ
};

enum class LrDecay { Constant, Linear };  // Linear: lr·(1 − step/steps) (SignRound)

struct ReconOptions {
  int steps = 200;          // optimizer steps (when epochs is 0)
  int epochs = 0;          // > 0: steps = epochs · ⌈samples / batch⌉ (OmniQuant counts epochs)
  int batch = 8;           // samples per step
  int samples = 0;         // calibration samples used (the first ones; 0 = all)
  OptimConfig optim;
  LrDecay decay = LrDecay::Constant;
  bool keep_best = false;  // restore θ of the lowest batch loss seen (SignRound)
  uint64_t seed = 0;
};

struct ReconReport {
  int layer = 0;
  double mse_init = 0;   // over the used samples, at θ's initial value (RTN-like start)
  double mse_final = 0;  // over the used samples, at the returned θ
  double first_loss = 0, best_loss = 0, last_loss = 0;  // batch losses
  int best_step = 0;
  double seconds = 0;
  std::vector<BlockQuantizer::Range> ranges;  // of the returned θ
};

// Optimises q.params on block ctx.layer (the block must still hold its float weights), then q.store()s it.
ReconReport reconstruct_block(BlockContext& ctx, BlockQuantizer& q, const ReconOptions& o);

// Reads batch / recon_samples / lr / seed of a stage into o (defaults: o as given).
void recon_options_from_stage(const nlohmann::json& st, const char* modifier, ReconOptions& o);

// The modifier both methods are: per block, make_quantizer(ctx) over the targeted Linears, reconstruct_block,
// one line per block on stderr. Reads targets/ignore and the grid (asymmetric only) of the stage.
class ReconModifier : public BlockModifier {
 public:
  ReconModifier(const nlohmann::json& st, const char* name);
  std::string name() const override { return name_; }
  StatsRequest stats_request() const override { return {false, false}; }
  void apply(BlockContext& ctx) override;
  const std::vector<ReconReport>& reports() const { return reports_; }

 protected:
  virtual std::unique_ptr<BlockQuantizer> make_quantizer(BlockContext& ctx) = 0;
  // Which Linears of block `layer` the stage quantizes.
  std::array<bool, kLinearsPerBlock> targeted(int layer) const;

  std::string name_;
  Targets targets_;
  QuantGrid grid_;
  ReconOptions ro_;
  std::vector<ReconReport> reports_;
};
// The per-block reports of an OmniQuant / SignRound modifier (empty for other modifiers).
const std::vector<ReconReport>& recon_reports(const BlockModifier& m);

}  // namespace lmp::train

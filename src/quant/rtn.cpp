// RTN: round-to-nearest on the quant/grid of each group, no calibration — the baseline every PTQ method is
// measured against. Stored as a QIntMatrix (packed codes + f16 scales + zeros), executed by the int kernels.
#include "quant/rtn.h"

#include "calib/targets.h"
#include "kernels/lowrank.h"
#include "kernels/qint.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

class RtnModifier final : public BlockModifier {
 public:
  explicit RtnModifier(const nlohmann::json& st)
      : targets_(Targets::from_stage(st)), grid_(grid_from_stage(st, "rtn")), head_(st.value("lm_head", false)) {}
  // "lm_head": true also quantizes the LM head (llama.cpp stores it quantized too). A tied head is the embedding
  // table: it becomes one stored matrix, and the lookups read its dequantization, so head and embedding still
  // share the same (quantized) values (Model::tied_head_stored).
  void apply_head(Model& m) override {
    if (head_) m.set_head(quantize(*m.lm_head.w));
  }
  std::string name() const override { return "rtn"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const std::string&, Linear& lin) {
                      if (const LowRankMatrix* lr = as_lowrank(*lin.w))  // a factorized Linear: quantize both factors
                        lin.w = std::make_unique<LowRankMatrix>(quantize(lr->a()), quantize(lr->b()));
                      else
                        lin.w = quantize(*lin.w);
                    });
  }

 private:
  WeightPtr quantize(const WeightMatrix& w) const {
    std::vector<float> W = w.dense();
    return QIntMatrix::quantize(w.rows(), w.cols(), W.data(), grid_);
  }
  Targets targets_;
  QuantGrid grid_;
  bool head_ = false;
};

}  // namespace

std::unique_ptr<BlockModifier> make_rtn_modifier(const nlohmann::json& stage) {
  return std::make_unique<RtnModifier>(stage);
}

}  // namespace lmp

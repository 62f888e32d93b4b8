#include "quant/f16.h"

#include "calib/targets.h"
#include "kernels/dense.h"

namespace lmp {

namespace {

class F16Modifier final : public BlockModifier {
 public:
  explicit F16Modifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)), head_(st.value("lm_head", false)) {}
  std::string name() const override { return "f16"; }
  // "lm_head": true stores the LM head (a tied one: the embedding table) in f16 too (Model::set_head).
  void apply_head(Model& m) override {
    if (head_) m.set_head(DenseF16::from_f32(m.lm_head.out(), m.lm_head.in(), m.lm_head.w->dense().data()));
  }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      return DenseF16::from_f32(lin.out(), lin.in(), W.data());  // round to nearest even
                    });
  }

 private:
  Targets targets_;
  bool head_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_f16_modifier(const nlohmann::json& stage) {
  return std::make_unique<F16Modifier>(stage);
}

}  // namespace lmp

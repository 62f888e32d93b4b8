#include "quant/f16.h"

#include "calib/targets.h"
#include "kernels/dense.h"

namespace lmp {

namespace {

class F16Modifier final : public BlockModifier {
 public:
  explicit F16Modifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {}
  std::string name() const override { return "f16"; }
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
};

}  // namespace

std::unique_ptr<BlockModifier> make_f16_modifier(const nlohmann::json& stage) {
  return std::make_unique<F16Modifier>(stage);
}

}  // namespace lmp

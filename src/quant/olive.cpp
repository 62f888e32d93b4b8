#include "quant/olive.h"

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/olive.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

class OliveModifier final : public BlockModifier {
 public:
  explicit OliveModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    const long bits = stage_int(st, "bits", 4, 1, 16, "olive");
    check(bits == 4, "olive: --bits {}: the OVP format is 4-bit", bits);
    group_ = int(stage_int(st, "group", 128, 0, 1 << 20, "olive"));
    check(OliveMatrix::supported_group(group_), "olive: --group {} is not supported (0, 32, 64, 128, 256)", group_);
  }
  std::string name() const override { return "olive"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      return OliveMatrix::quantize(lin.out(), lin.in(), W.data(), group_);
                    });
  }

 private:
  Targets targets_;
  int group_ = 128;
};

}  // namespace

std::unique_ptr<BlockModifier> make_olive_modifier(const nlohmann::json& stage) {
  return std::make_unique<OliveModifier>(stage);
}

}  // namespace lmp

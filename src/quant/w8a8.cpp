#include "quant/w8a8.h"

#include "core/error.h"
#include "kernels/w8a8.h"
#include "quant/quant_args.h"

namespace lmp {

int w8a8_group_from_stage(const nlohmann::json& st, const char* mod) {
  long bits = stage_int(st, "bits", 8, 1, 16, mod), act = stage_int(st, "act_bits", 8, 1, 16, mod);
  check(bits == 8, "{}: --bits {} is not supported: weights are int8 (--bits 8)", mod, bits);
  check(act == 8, "{}: --act-bits {} is not supported: activations are int8 (--act-bits 8)", mod, act);
  int group = int(stage_int(st, "group", 0, 0, 1 << 20, mod));
  check(W8A8Matrix::supported_group(group), "{}: --group {} is not supported (0 = per output channel, 32, 64, 128, 256)",
        mod, group);
  return group;
}

void quantize_block_w8a8(Block& b, int layer, const Targets& targets, int group) {
  rewrite_targets(b, layer, targets, [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
    return W8A8Matrix::quantize(lin.out(), lin.in(), W.data(), group);
  });
}

namespace {

class W8A8Modifier final : public BlockModifier {
 public:
  explicit W8A8Modifier(const nlohmann::json& st)
      : targets_(Targets::from_stage(st)), group_(w8a8_group_from_stage(st, "w8a8")) {}
  std::string name() const override { return "w8a8"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    quantize_block_w8a8(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_, group_);
  }

 private:
  Targets targets_;
  int group_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_w8a8_modifier(const nlohmann::json& stage) {
  return std::make_unique<W8A8Modifier>(stage);
}

}  // namespace lmp

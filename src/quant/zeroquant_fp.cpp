#include "quant/zeroquant_fp.h"

#include "calib/targets.h"
#include "core/error.h"
#include "quant/fp8.h"
#include "quant/quant_args.h"

namespace lmp {

WeightPtr zeroquant_fp_quantize(const float* W, int64_t rows, int64_t cols, const ZeroQuantFpOptions& o) {
  WeightPtr q = quantize_lowfloat(W, rows, cols, o.w, o.group, o.bias_search, o.pow2).q;
  if (!o.act) return q;
  return std::make_unique<FpActMatrix>(std::move(q), o.act_fmt);
}

namespace {

class ZeroQuantFpModifier final : public BlockModifier {
 public:
  explicit ZeroQuantFpModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    const std::string w = st.value("fp", std::string("e2m1"));
    check(lowfloat_from_name(w, &o_.w), "zeroquant_fp: fp '{}' is not supported (e2m1, e4m3 or e5m2)", w);
    o_.group = int(stage_int(st, "group", 32, 0, 1 << 20, "zeroquant_fp"));
    check(LowFloatMatrix::supported_group(o_.group),
          "zeroquant_fp: --group {} is not supported (0 = per row, 32, 64, 128, 256)", o_.group);
    const std::string a = st.value("act", std::string("e4m3"));
    o_.act = a != "none";
    check(!o_.act || (lowfloat_from_name(a, &o_.act_fmt) && lowfloat_spec(o_.act_fmt).bits() == 8),
          "zeroquant_fp: act '{}' is not supported (e4m3, e5m2 or none)", a);
    const std::string sc = st.value("scales", std::string("pow2"));
    check(sc == "pow2" || sc == "free", "zeroquant_fp: scales '{}' is not supported (pow2 or free)", sc);
    o_.pow2 = sc == "pow2";
    o_.bias_search = st.value("bias_search", true);
  }
  std::string name() const override { return "zeroquant_fp"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const Linear& lin, const std::vector<float>& W) {
                      return zeroquant_fp_quantize(W.data(), lin.out(), lin.in(), o_);
                    });
  }

 private:
  Targets targets_;
  ZeroQuantFpOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_zeroquant_fp_modifier(const nlohmann::json& stage) {
  return std::make_unique<ZeroQuantFpModifier>(stage);
}

}  // namespace lmp

#include "quant/fp8.h"

#include <cmath>

#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

LowFloatChoice quantize_lowfloat(const float* W, int64_t rows, int64_t cols, LowFloat f, int group, bool search,
                                 bool pow2) {
  LowFloatChoice best;
  best.mse = INFINITY;
  std::vector<float> D(size_t(rows * cols));
  for (int b = 0; b <= (search ? 4 : 0); b++) {
    const float clip = std::exp2(-0.25f * float(b));
    auto q = LowFloatMatrix::quantize(rows, cols, W, f, group, clip, pow2);
    q->dequantize(D.data());
    double e = 0;
    for (size_t i = 0; i < D.size(); i++) e += (double(W[i]) - D[i]) * (double(W[i]) - D[i]);
    e /= double(D.size());
    if (e < best.mse) best.mse = e, best.clip = clip, best.q = std::move(q);
  }
  return best;
}

namespace {

class LowFloatModifier final : public BlockModifier {
 public:
  LowFloatModifier(const nlohmann::json& st, const char* name, LowFloat dflt) : name_(name), targets_(Targets::from_stage(st)) {
    fmt_ = dflt;
    if (st.contains("fp")) {
      check(st["fp"].is_string() && lowfloat_from_name(st["fp"].get<std::string>(), &fmt_) &&
                (fmt_ == LowFloat::E2M1) == (dflt == LowFloat::E2M1),
            "{}: fp {} is not supported ({})", name, st["fp"].dump(), dflt == LowFloat::E2M1 ? "e2m1" : "e4m3 or e5m2");
    }
    group_ = int(stage_int(st, "group", 128, 0, 1 << 20, name));
    check(LowFloatMatrix::supported_group(group_), "{}: --group {} is not supported (0 = per row, 32, 64, 128, 256)",
          name, group_);
    search_ = st.value("bias_search", true);
  }
  std::string name() const override { return name_; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      return quantize_lowfloat(W.data(), lin.out(), lin.in(), fmt_, group_, search_).q;
                    });
  }

 private:
  const char* name_;
  Targets targets_;
  LowFloat fmt_;
  int group_ = 128;
  bool search_ = true;
};

}  // namespace

std::unique_ptr<BlockModifier> make_fp8_modifier(const nlohmann::json& stage) {
  return std::make_unique<LowFloatModifier>(stage, "fp8", LowFloat::E4M3);
}
std::unique_ptr<BlockModifier> make_fp4_modifier(const nlohmann::json& stage) {
  return std::make_unique<LowFloatModifier>(stage, "fp4", LowFloat::E2M1);
}

}  // namespace lmp

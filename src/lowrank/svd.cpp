#include "lowrank/svd.h"

#include "calib/targets.h"

namespace lmp {

std::unique_ptr<LowRankMatrix> svd_factorize(const float* W, int64_t m, int64_t n, int64_t k, FactorDtype dt,
                                             const std::string& what) {
  return make_lowrank(truncated_svd(W, m, n, k, what), dt);
}

namespace {

class SvdModifier final : public BlockModifier {
 public:
  explicit SvdModifier(const nlohmann::json& st)
      : targets_(Targets::from_stage(st)), rule_(RankRule::from_stage(st, "svd")), dt_(factor_dtype_from_stage(st, "svd")) {}
  std::string name() const override { return "svd"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const std::string& name, Linear& lin) {
      const int64_t m = lin.out(), n = lin.in();
      std::vector<float> W = lin.w->dense();
      Svd svd = thin_svd(to_double(W.data(), W.size()), m, n, name);  // W = U Σ Vᵀ
      int64_t k = rule_.rank(m, n, svd.s, name);
      if (!lowrank_pays_or_report("svd", name, m, n, k)) return;
      lin.w = make_lowrank(split_sqrt(svd, k), dt_);                   // W ≈ (U_k √Σ_k)(√Σ_k V_kᵀ)
    });
  }

 private:
  Targets targets_;
  RankRule rule_;
  FactorDtype dt_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_svd_modifier(const nlohmann::json& stage) {
  return std::make_unique<SvdModifier>(stage);
}

}  // namespace lmp

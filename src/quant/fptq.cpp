#include "quant/fptq.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/w4a8.h"
#include "quant/quant_args.h"
#include "quant/smoothquant.h"

namespace lmp {

std::vector<float> lae_scales(const float* act_max, int64_t C) {
  std::vector<float> s(size_t(C), 1.0f);
  for (int64_t j = 0; j < C; j++)
    if (act_max[j] > 0) s[size_t(j)] = float(double(act_max[j]) / std::log2(2.0 + act_max[j]));
  return s;
}

namespace {

class FptqModifier final : public BlockModifier {
 public:
  explicit FptqModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)), grid_(grid_from_stage(st, "fptq")) {
    check(grid_.bits == 4, "fptq: --bits {}: W4A8 weights are 4-bit", grid_.bits);
    check(QIntMatrix::supported(grid_), "fptq: --group {} is not supported (0, 32, 64, 128, 256)", grid_.group);
    const long act = stage_int(st, "act_bits", 8, 1, 16, "fptq");
    check(act == 8, "fptq: --act-bits {}: activations are int8", act);
    threshold_ = stage_real(st, "lae_threshold", 15.0, 0.0, 1e30, "fptq");
  }
  std::string name() const override { return "fptq"; }
  StatsRequest stats_request() const override { return {false, true}; }

  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    std::string hard;
    for (SmoothSite site : {SmoothSite::Attn, SmoothSite::Mlp, SmoothSite::O, SmoothSite::Down}) {
      if (!smoothable(b, site)) continue;
      const LinearKind k = site_kind(site);
      const std::vector<float>& amax = ctx.stats.of(k).abs_max;
      check(int64_t(amax.size()) == b.at(k).in(), "fptq: block {} has no max|x| statistics for {}", ctx.layer,
            kLinearNames[size_t(k)]);
      const float range = *std::max_element(amax.begin(), amax.end());
      if (range <= threshold_) continue;
      fold_smoothing(b, site, lae_scales(amax.data(), int64_t(amax.size())));
      hard += fmt::format(" {}({:.1f})", kLinearNames[size_t(k)], range);
    }
    std::fprintf(stderr, "fptq: block %d LAE on:%s\n", ctx.layer, hard.empty() ? " none" : hard.c_str());
    rewrite_targets(b, ctx.layer, targets_, [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
      return std::make_unique<W4A8Matrix>(QIntMatrix::quantize(lin.out(), lin.in(), W.data(), grid_));
    });
  }

 private:
  Targets targets_;
  QuantGrid grid_;
  double threshold_ = 15;
};

}  // namespace

std::unique_ptr<BlockModifier> make_fptq_modifier(const nlohmann::json& stage) {
  return std::make_unique<FptqModifier>(stage);
}

}  // namespace lmp

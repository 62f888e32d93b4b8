#include "quant/llm_int8.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/w8a8_outlier.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<int32_t> llm_int8_outliers(const std::vector<float>& act_max, double threshold, double frac) {
  const int64_t C = int64_t(act_max.size());
  std::vector<int32_t> idx;
  if (frac > 0) {
    std::vector<int32_t> order(static_cast<size_t>(C));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return act_max[size_t(a)] > act_max[size_t(b)]; });
    idx.assign(order.begin(), order.begin() + std::min<int64_t>(C - 1, int64_t(std::ceil(frac * double(C)))));
  } else {
    for (int32_t j = 0; j < C; j++)
      if (act_max[size_t(j)] > threshold && int64_t(idx.size()) < C - 1) idx.push_back(j);
  }
  std::sort(idx.begin(), idx.end());
  return idx;
}

namespace {

class LlmInt8Modifier final : public BlockModifier {
 public:
  explicit LlmInt8Modifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    threshold_ = stage_real(st, "threshold", 6.0, 0.0, 1e30, "llm_int8");
    frac_ = stage_real(st, "outlier_frac", 0.0, 0.0, 0.5, "llm_int8");
    long bits = stage_int(st, "bits", 8, 1, 16, "llm_int8"), act = stage_int(st, "act_bits", 8, 1, 16, "llm_int8");
    check(bits == 8 && act == 8, "llm_int8: weights and activations are int8 (--bits 8 --act-bits 8), got {} / {}",
          bits, act);
  }
  std::string name() const override { return "llm_int8"; }
  StatsRequest stats_request() const override { return {false, true}; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      auto cols = llm_int8_outliers(ctx.stats.of(k).abs_max, threshold_, frac_);
                      return OutlierW8A8Matrix::quantize(lin.out(), lin.in(), W.data(), std::move(cols));
                    });
  }

 private:
  Targets targets_;
  double threshold_ = 6.0, frac_ = 0.0;
};

}  // namespace

std::unique_ptr<BlockModifier> make_llm_int8_modifier(const nlohmann::json& stage) {
  return std::make_unique<LlmInt8Modifier>(stage);
}

}  // namespace lmp

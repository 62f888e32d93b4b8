#include "prune/wanda.h"

#include <cmath>

#include "core/error.h"
#include "prune/prune_modifier.h"

namespace lmp {

std::vector<float> wanda_scores(const float* W, int64_t rows, int64_t cols, const std::vector<double>& xnorm) {
  check(int64_t(xnorm.size()) == cols, "wanda: {} activation norms for {} inputs", xnorm.size(), cols);
  std::vector<float> S(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) S[size_t(r * cols + c)] = float(std::fabs(double(W[r * cols + c])) * xnorm[size_t(c)]);
  return S;
}

std::vector<uint8_t> wanda_mask(const float* W, int64_t rows, int64_t cols, const std::vector<double>& xnorm,
                                const SparsitySpec& spec) {
  std::vector<float> S = wanda_scores(W, rows, cols, xnorm);
  return select_mask(S.data(), rows, cols, spec);
}

namespace {

class WandaModifier final : public PruneModifier {
 public:
  explicit WandaModifier(const nlohmann::json& st) : PruneModifier(st, "wanda") {}
  StatsRequest stats_request() const override { return {false, true}; }

 protected:
  WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    auto mask = wanda_mask(W.data(), rows, cols, ctx.stats.of(kind).l2_norm(), spec);
    apply_mask(W.data(), mask.data(), rows * cols);
    return store_pruned(rows, cols, W.data(), store_for(spec), what);
  }
};

}  // namespace

std::unique_ptr<BlockModifier> make_wanda_modifier(const nlohmann::json& stage) {
  return std::make_unique<WandaModifier>(stage);
}

}  // namespace lmp

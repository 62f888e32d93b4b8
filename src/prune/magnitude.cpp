#include "prune/magnitude.h"

#include <cmath>

#include "core/error.h"
#include "prune/prune_modifier.h"

namespace lmp {

std::vector<uint8_t> magnitude_mask(const float* W, int64_t rows, int64_t cols, const SparsitySpec& spec,
                                    MagnitudeScope scope) {
  std::vector<float> score(size_t(rows * cols));
  for (size_t i = 0; i < score.size(); i++) score[i] = std::fabs(W[i]);  // |W_ij|
  if (spec.nm.active() || scope == MagnitudeScope::Row) return select_mask(score.data(), rows, cols, spec);
  std::vector<uint8_t> mask(score.size(), 0);
  mask_lowest_in_matrix(score.data(), rows * cols, spec.sparsity, mask.data());
  return mask;
}

namespace {

class MagnitudeModifier final : public PruneModifier {
 public:
  explicit MagnitudeModifier(const nlohmann::json& st) : PruneModifier(st, "magnitude") {
    std::string s = st.value("scope", "matrix");
    check(s == "matrix" || s == "row", "magnitude: scope '{}' must be 'matrix' or 'row'", s);
    scope_ = s == "matrix" ? MagnitudeScope::Matrix : MagnitudeScope::Row;
  }
  StatsRequest stats_request() const override { return {false, args_.owl}; }
  bool needs_calibration() const override { return args_.owl; }  // OWL's outlier ratios need activations

 protected:
  WeightPtr prune_linear(BlockContext&, LinearKind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    apply_mask(W.data(), magnitude_mask(W.data(), rows, cols, spec, scope_).data(), rows * cols);
    return store_pruned(rows, cols, W.data(), store_for(spec), what);
  }

 private:
  MagnitudeScope scope_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_magnitude_modifier(const nlohmann::json& stage) {
  return std::make_unique<MagnitudeModifier>(stage);
}

}  // namespace lmp

#include "quant/owq.h"

#include <algorithm>
#include <cmath>
#include <lapacke.h>
#include <numeric>

#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<int32_t> owq_weak_columns(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                      int64_t k) {
  std::vector<double> lam(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) lam[size_t(c)] += double(W[r * cols + c]) * W[r * cols + c];
  for (int64_t c = 0; c < cols; c++) lam[size_t(c)] *= H[size_t(c * cols + c)];
  std::vector<int32_t> idx(static_cast<size_t>(cols));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return lam[size_t(a)] > lam[size_t(b)]; });
  idx.resize(size_t(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

WeightPtr owq_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H, const OwqOptions& o,
                       const std::string& what) {
  int64_t k = o.weak_frac > 0 ? int64_t(std::ceil(o.weak_frac * double(cols))) : 0;
  k = std::min(k, cols - 1);
  if (k == 0) return gptq_quantize(W, rows, cols, H, o.gptq, what).q;
  std::vector<int32_t> kept = owq_weak_columns(W, rows, cols, H, k);
  std::vector<char> is_kept(size_t(cols), 0);
  for (int32_t c : kept) is_kept[size_t(c)] = 1;
  std::vector<int32_t> rest;
  for (int32_t c = 0; c < cols; c++)
    if (!is_kept[size_t(c)]) rest.push_back(c);
  const int64_t nr = int64_t(rest.size());
  std::vector<float> Wr(size_t(rows * nr)), Wk(size_t(rows * k));
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t j = 0; j < nr; j++) Wr[size_t(r * nr + j)] = W[r * cols + rest[size_t(j)]];
    for (int64_t j = 0; j < k; j++) Wk[size_t(r * k + j)] = W[r * cols + kept[size_t(j)]];
  }
  std::vector<double> Hr(size_t(nr * nr));
  for (int64_t i = 0; i < nr; i++)
    for (int64_t j = 0; j < nr; j++) Hr[size_t(i * nr + j)] = H[size_t(rest[size_t(i)] * cols + rest[size_t(j)])];
  WeightPtr q = gptq_quantize(Wr.data(), rows, nr, Hr, o.gptq, what).q;
  // Kept columns absorb the rest's error: M = (H_KK + λI)⁻¹ H_KR  (k × nr), W_K += ΔW_R · Mᵀ.
  std::vector<double> Hkk(size_t(k * k)), M(size_t(k * nr));
  double mean = 0;
  for (int64_t c = 0; c < cols; c++) mean += H[size_t(c * cols + c)] / double(cols);
  for (int64_t i = 0; i < k; i++) {
    for (int64_t j = 0; j < k; j++) Hkk[size_t(i * k + j)] = H[size_t(kept[size_t(i)] * cols + kept[size_t(j)])];
    Hkk[size_t(i * k + i)] += o.gptq.damp * mean + 1e-12;
    for (int64_t j = 0; j < nr; j++) M[size_t(i * nr + j)] = H[size_t(kept[size_t(i)] * cols + rest[size_t(j)])];
  }
  if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', int(k), int(nr), Hkk.data(), int(k), M.data(), int(nr)) == 0) {
    std::vector<float> Q = q->dense();
    for (int64_t r = 0; r < rows; r++)
      for (int64_t i = 0; i < k; i++) {
        double acc = 0;
        for (int64_t j = 0; j < nr; j++)
          acc += double(Wr[size_t(r * nr + j)] - Q[size_t(r * nr + j)]) * M[size_t(i * nr + j)];
        Wk[size_t(r * k + i)] += float(acc);
      }
  }  // else: H_KK not positive definite even damped (dead inputs): keep W_K as is
  return std::make_unique<ColumnSplitMatrix>(rows, cols, std::move(q), std::move(kept), Wk.data());
}

namespace {

class OwqModifier final : public BlockModifier {
 public:
  explicit OwqModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.gptq.grid = grid_from_stage(st, "owq");
    o_.gptq.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, "owq");
    o_.gptq.block = int(stage_int(st, "block", 128, 1, 1 << 16, "owq"));
    o_.gptq.act_order = st.value("act_order", false);
    o_.weak_frac = stage_real(st, "weak_frac", 0.01, 0.0, 0.5, "owq");
  }
  std::string name() const override { return "owq"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const std::string& name, Linear& lin) {
                      std::vector<float> W = lin.w->dense();
                      lin.w = owq_quantize(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), o_, name);
                    });
  }

 private:
  Targets targets_;
  OwqOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_owq_modifier(const nlohmann::json& stage) {
  return std::make_unique<OwqModifier>(stage);
}

}  // namespace lmp

#include "prune/dsnot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "calib/obs_solver.h"
#include "core/error.h"
#include "prune/magnitude.h"
#include "prune/prune_modifier.h"
#include "prune/wanda.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

int sign(double x) { return (x > 0) - (x < 0); }

// One row: see the header for the cycle.
int64_t refine_row(const float* w, int64_t cols, const float* imp, const double* mean, const double* var,
                   const DsnotOptions& o, uint8_t* mask) {
  std::vector<double> D(static_cast<size_t>(cols));  // D_j = W_ij · x̄_j
  double eps = 0;                                     // ε = Σ_{j pruned} D_j
  for (int64_t j = 0; j < cols; j++) {
    D[size_t(j)] = double(w[j]) * mean[j];
    if (mask[j]) eps += D[size_t(j)];
  }
  const int sign0 = sign(eps);
  // Grow candidates: pruned weights ascending by D_j / Var_j^power.
  std::vector<int64_t> grow;
  std::vector<double> key(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; j++) {
    key[size_t(j)] = D[size_t(j)] / std::pow(std::max(var[j], 1e-12), o.var_power);
    if (mask[j]) grow.push_back(j);
  }
  std::stable_sort(grow.begin(), grow.end(), [&](int64_t a, int64_t b) { return key[size_t(a)] < key[size_t(b)]; });
  // Prune candidates (unstructured): kept weights by importance, split by the sign of D.
  std::vector<int64_t> kept, neg, pos;
  for (int64_t j = 0; j < cols; j++)
    if (!mask[j]) kept.push_back(j);
  std::stable_sort(kept.begin(), kept.end(), [&](int64_t a, int64_t b) { return imp[a] < imp[b]; });
  for (int64_t j : kept)
    if (D[size_t(j)] < 0) neg.push_back(j);
    else if (D[size_t(j)] > 0) pos.push_back(j);
  // N:M: importance of still-prunable weights (initially pruned and already swapped-out ones excluded).
  std::vector<float> nm_imp;
  if (o.nm.active()) {
    nm_imp.assign(imp, imp + cols);
    for (int64_t j = 0; j < cols; j++)
      if (mask[j]) nm_imp[size_t(j)] = std::numeric_limits<float>::infinity();
  }
  int64_t lo = 0, hi = int64_t(grow.size()) - 1, pn = 0, pp = 0, swaps = 0;
  for (int cycle = 0; cycle < o.max_cycles && std::fabs(eps) > o.threshold && lo <= hi; cycle++) {
    const int64_t g = eps > 0 ? grow[size_t(hi--)] : grow[size_t(lo++)];
    int64_t p = -1;
    if (o.nm.active()) {
      const int64_t g0 = g / o.nm.m * o.nm.m;
      for (int64_t j = g0; j < g0 + o.nm.m; j++)
        if (!mask[j] && std::isfinite(nm_imp[size_t(j)]) && (p < 0 || nm_imp[size_t(j)] < nm_imp[size_t(p)])) p = j;
    } else if (eps < 0 && pp < int64_t(pos.size())) {
      p = pos[size_t(pp++)];
    } else if (eps >= 0 && pn < int64_t(neg.size())) {
      p = neg[size_t(pn++)];
    }
    if (p < 0) break;
    const double after = eps + D[size_t(p)] - D[size_t(g)];
    if (sign(after) != sign0) break;
    mask[p] = 1, mask[g] = 0, eps = after, swaps++;
    if (o.nm.active()) nm_imp[size_t(p)] = std::numeric_limits<float>::infinity();
  }
  return swaps;
}

}  // namespace

int64_t dsnot_refine(const float* W, int64_t rows, int64_t cols, const float* importance,
                     const std::vector<double>& mean, const std::vector<double>& var, const DsnotOptions& o,
                     uint8_t* mask) {
  check(int64_t(mean.size()) == cols && int64_t(var.size()) == cols, "dsnot: {} means / {} variances for {} inputs",
        mean.size(), var.size(), cols);
  int64_t swaps = 0;
#pragma omp parallel for schedule(static) reduction(+ : swaps) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++)
    swaps += refine_row(W + r * cols, cols, importance + r * cols, mean.data(), var.data(), o, mask + r * cols);
  return swaps;
}

namespace {

enum class Initial { Wanda, Magnitude, SparseGpt };

class DsnotModifier final : public PruneModifier {
 public:
  explicit DsnotModifier(const nlohmann::json& st) : PruneModifier(st, "dsnot") {
    std::string init = st.value("initial", "wanda");
    check(init == "wanda" || init == "magnitude" || init == "sparsegpt",
          "dsnot: initial '{}' must be wanda, magnitude or sparsegpt", init);
    initial_ = init == "wanda" ? Initial::Wanda : init == "magnitude" ? Initial::Magnitude : Initial::SparseGpt;
    o_.max_cycles = int(stage_int(st, "max_cycles", 50, 0, 1 << 20, "dsnot"));
    o_.threshold = stage_real(st, "threshold", 0.1, 0.0, 1e30, "dsnot");
    o_.var_power = stage_real(st, "var_power", 1.0, 0.0, 4.0, "dsnot");
    damp_ = stage_real(st, "damp", 0.01, 0.0, 1.0, "dsnot");
  }
  StatsRequest stats_request() const override { return {initial_ == Initial::SparseGpt, true}; }

 protected:
  // x̄_j per input site: Σx over every calibration token of the block as it is now.
  void begin_block(BlockContext& ctx) override {
    for (auto& s : sum_) s.clear();
    std::vector<float> out(ctx.inputs.empty() ? 0 : ctx.inputs[0].size());
    for (int s = 0; s < int(ctx.inputs.size()); s++)
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k == LinearKind::K || k == LinearKind::V || k == LinearKind::Up) return;  // shared inputs
        const int64_t in = ctx.stats.of(k).in;
        std::vector<double>& acc = sum_[size_t(kInputSite[size_t(k)])];
        acc.resize(size_t(in), 0.0);
        for (int64_t t = 0; t < n; t++)
          for (int64_t j = 0; j < in; j++) acc[size_t(j)] += X[t * in + j];
      });
  }

  WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    const LinearStats& st = ctx.stats.of(kind);
    const std::vector<double>& sum = sum_[size_t(kInputSite[size_t(kind)])];
    check(int64_t(sum.size()) == cols && st.count > 0, "dsnot: {}: no activation statistics", what);
    std::vector<double> mean(static_cast<size_t>(cols)), var(static_cast<size_t>(cols));
    for (int64_t j = 0; j < cols; j++) {
      mean[size_t(j)] = sum[size_t(j)] / double(st.count);
      var[size_t(j)] = std::max(st.sq_sum[size_t(j)] / double(st.count) - mean[size_t(j)] * mean[size_t(j)], 0.0);
    }
    std::vector<float> init = initial_scores(ctx, kind, W, rows, cols, what);
    std::vector<uint8_t> mask = select_mask(init.data(), rows, cols, spec);
    std::vector<float> wanda = wanda_scores(W.data(), rows, cols, st.l2_norm());
    DsnotOptions o = o_;
    o.nm = spec.nm;
    dsnot_refine(W.data(), rows, cols, spec.nm.active() ? init.data() : wanda.data(), mean, var, o, mask.data());
    apply_mask(W.data(), mask.data(), rows * cols);
    return store_pruned(rows, cols, W.data(), store_for(spec), what);
  }

 private:
  std::vector<float> initial_scores(BlockContext& ctx, LinearKind kind, const std::vector<float>& W, int64_t rows,
                                    int64_t cols, const std::string& what) const {
    if (initial_ == Initial::Wanda) return wanda_scores(W.data(), rows, cols, ctx.stats.of(kind).l2_norm());
    std::vector<float> S(W.size());
    for (size_t i = 0; i < S.size(); i++) S[i] = std::fabs(W[i]);
    if (initial_ == Initial::Magnitude) return S;
    // SparseGPT's score w²/[U]²_jj without its weight update.
    std::vector<char> dead;
    double used = 0;
    std::vector<float> U = inverse_hessian_cholesky(ctx.stats.of(kind).hessian(), cols, damp_, what, &dead, &used);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < cols; j++) {
        const float d = U[size_t(j * cols + j)];
        S[size_t(r * cols + j)] = W[size_t(r * cols + j)] * W[size_t(r * cols + j)] / (d * d);
      }
    return S;
  }

  Initial initial_;
  DsnotOptions o_;
  double damp_;
  std::array<std::vector<double>, kInputSites> sum_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_dsnot_modifier(const nlohmann::json& stage) {
  return std::make_unique<DsnotModifier>(stage);
}

}  // namespace lmp

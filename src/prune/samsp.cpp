#include "prune/samsp.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "calib/obs_solver.h"
#include "core/error.h"
#include "prune/mask.h"
#include "prune/owl.h"
#include "prune/prune_modifier.h"
#include "prune/sparsegpt.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<float> obs_saliency(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H, double damp,
                                const std::string& what) {
  std::vector<char> dead;
  double used = 0;
  std::vector<float> U = inverse_hessian_cholesky(H, cols, damp, what, &dead, &used);
  std::vector<double> hinv(static_cast<size_t>(cols), 0.0);  // [H⁻¹]_jj = Σ_{k ≤ j} U_kj²  (H⁻¹ = UᵀU)
  for (int64_t k = 0; k < cols; k++)
    for (int64_t j = k; j < cols; j++) hinv[size_t(j)] += double(U[size_t(k * cols + j)]) * U[size_t(k * cols + j)];
  std::vector<float> s(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) {
      const double w = W[r * cols + j];
      s[size_t(r * cols + j)] = float(w * w / hinv[size_t(j)]);
    }
  return s;
}

std::vector<int64_t> samsp_allocate(const std::vector<std::vector<float>>& saliency, double target, double delta) {
  check(target > 0 && target < 1 && delta >= 0, "samsp: target {} / delta {} out of range", target, delta);
  const double lo_p = std::max(0.0, target - delta), hi_p = std::min(target + delta, 0.99);
  int64_t total = 0, lo_sum = 0;
  std::vector<int64_t> z(saliency.size()), hi(saliency.size());
  for (size_t l = 0; l < saliency.size(); l++) {
    const int64_t n = int64_t(saliency[l].size());
    total += n;
    z[l] = prune_count(n, lo_p), hi[l] = std::max(z[l], prune_count(n, hi_p));
    lo_sum += z[l];
  }
  const int64_t Z = prune_count(total, target);
  // The candidates each matrix may give up beyond its minimum, as (saliency, matrix).
  std::vector<std::pair<float, uint32_t>> cand;
  for (size_t l = 0; l < saliency.size(); l++) {
    std::vector<float> s = saliency[l];
    std::sort(s.begin(), s.end());
    for (int64_t i = z[l]; i < hi[l]; i++) cand.push_back({s[size_t(i)], uint32_t(l)});
  }
  const int64_t R = Z - lo_sum;
  check(R >= 0 && R <= int64_t(cand.size()), "samsp: target {} cannot be met within ±{} per matrix", target, delta);
  std::nth_element(cand.begin(), cand.begin() + R, cand.end());
  for (int64_t i = 0; i < R; i++) z[cand[size_t(i)].second]++;
  return z;
}

namespace {

class SamspModifier final : public PruneModifier {
 public:
  explicit SamspModifier(const nlohmann::json& st) : PruneModifier(st, "samsp") {
    check(!args_.spec.nm.active() && !args_.owl, "samsp: mixed sparsity is unstructured: give \"sparsity\", not nm/owl");
    delta_ = stage_real(st, "delta", 0.1, 0.0, 0.5, "samsp");
    o_.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, "samsp");
    o_.block = int(stage_int(st, "block", 128, 1, 1 << 16, "samsp"));
    const std::string mask = st.value("mask", "row");
    check(mask == "row" || mask == "block", "samsp: mask '{}' must be row or block", mask);
    o_.block_mask = mask == "block";
  }
  StatsRequest stats_request() const override { return {true, false}; }

 protected:
  // Once, before block 0 is pruned: the sensitivity pre-pass and the allocation of every targeted matrix.
  void begin_block(BlockContext& ctx) override {
    if (!alloc_.empty()) return;
    check(!ctx.inputs.empty(), "samsp: needs calibration data (--calib FILE)");
    const Model& m = ctx.model;
    std::vector<std::vector<float>> xs = ctx.inputs, sal;
    std::vector<std::pair<int, int>> where;
    for (int l = 0; l < m.cfg.n_layers; l++) {
      BlockStats st = block_stats_and_advance(m, l, xs, ctx.seqlen, StatsRequest{true, false});
      for (int k = 0; k < kLinearsPerBlock; k++) {
        const std::string what = linear_name(l, LinearKind(k));
        if (!targets_.match(what)) continue;
        const Linear& lin = m.blocks[size_t(l)].lin[size_t(k)];
        std::vector<float> W = lin.w->dense();
        sal.push_back(obs_saliency(W.data(), lin.out(), lin.in(), st.of(LinearKind(k)).hessian(), o_.damp, what));
        where.push_back({l, k});
      }
    }
    std::vector<int64_t> z = samsp_allocate(sal, args_.spec.sparsity, delta_);
    alloc_.assign(size_t(m.cfg.n_layers * kLinearsPerBlock), -1);
    std::string line;
    for (size_t i = 0; i < z.size(); i++) {
      alloc_[size_t(where[i].first * kLinearsPerBlock + where[i].second)] = z[i];
      line += fmt::format(" {:.3f}", double(z[i]) / double(sal[i].size()));
    }
    std::fprintf(stderr, "samsp: sparsity per matrix (layer-major, q k v o gate up down):%s\n", line.c_str());
  }

  WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    SparseGptOptions o = o_;
    o.prune_total = alloc_[size_t(ctx.layer * kLinearsPerBlock + int(kind))];
    check(o.prune_total >= 0, "samsp: {} has no allocation", what);
    o.spec.sparsity = std::max(1e-9, double(o.prune_total) / double(rows * cols));
    SparseGptResult r = sparsegpt_prune(W.data(), rows, cols, ctx.stats.of(kind).hessian(), o, what);
    return sparsegpt_store(r, rows, cols, o, store_for(o.spec), what);
  }

 private:
  double delta_ = 0.1;
  SparseGptOptions o_;
  std::vector<int64_t> alloc_;  // (layers, 7) pruned count, −1 = not targeted
};

}  // namespace

std::unique_ptr<BlockModifier> make_samsp_modifier(const nlohmann::json& stage) {
  return std::make_unique<SamspModifier>(stage);
}

}  // namespace lmp

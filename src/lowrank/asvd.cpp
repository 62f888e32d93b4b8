#include "lowrank/asvd.h"

#include <cmath>
#include <limits>

#include "calib/targets.h"
#include "core/error.h"
#include "core/progress.h"
#include "lowrank/layer_search.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<double> asvd_scales(const std::vector<double>& mean_abs, double alpha) {
  std::vector<double> s(mean_abs.size());
  double mx = 0;
  for (size_t j = 0; j < s.size(); j++) mx = std::max(mx, s[j] = std::pow(std::max(mean_abs[j], 0.0), alpha));
  const double floor = mx > 0 ? 1e-6 * mx : 1.0;
  for (double& v : s) v = std::max(v, floor);
  return s;
}

Svd asvd_svd(const float* W, int64_t m, int64_t n, const std::vector<double>& s, const std::string& what) {
  check(int64_t(s.size()) == n, "{}: {} channel scales for {} input channels", what, s.size(), n);
  std::vector<double> WS(size_t(m * n));  // W·S
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) WS[size_t(i * n + j)] = double(W[i * n + j]) * s[size_t(j)];
  return thin_svd(WS, m, n, what);  // W·S = U Σ Vᵀ
}

Factors asvd_split(const Svd& svd, const std::vector<double>& s, int64_t k) {
  Factors f = split_sqrt(svd, k);  // W·S ≈ (U_k √Σ_k)(√Σ_k V_kᵀ)
  for (int64_t r = 0; r < k; r++)  // B ← B·S⁻¹: the scaling undone
    for (int64_t j = 0; j < f.n; j++) f.B[size_t(r * f.n + j)] = float(double(f.B[size_t(r * f.n + j)]) / s[size_t(j)]);
  return f;
}

Factors asvd_factors(const float* W, int64_t m, int64_t n, const std::vector<double>& s, int64_t k,
                     const std::string& what) {
  check_rank(k, m, n, what);
  return asvd_split(asvd_svd(W, m, n, s, what), s, k);
}

std::unique_ptr<LowRankMatrix> asvd_factorize(const float* W, int64_t m, int64_t n, const std::vector<double>& mean_abs,
                                              double alpha, int64_t k, FactorDtype dt) {
  return make_lowrank(asvd_factors(W, m, n, asvd_scales(mean_abs, alpha), k), dt);
}

// ---------------------------------------------------------------------------------------------------
// Sensitivity and allocation

nlohmann::json AsvdSensitivity::to_json() const {
  nlohmann::json rj = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json ppl = nlohmann::json::array();
    for (double v : r.nll) ppl.push_back(std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(std::exp(v)));
    rj.push_back({{"linear", r.linear}, {"ppl", ppl}});
  }
  return {{"metric", "calibration-window ppl with only that Linear factorized"},
          {"grid", grid},
          {"base_ppl", std::exp(base_nll)},
          {"rows", rj}};
}

AsvdSensitivity asvd_sensitivity(Model& m, const Samples& fit, const Samples& score, const std::vector<double>& grid,
                                 double alpha, const Targets& targets, bool progress) {
  AsvdSensitivity out;
  out.grid = grid;
  for (double r : grid) check(r > 0 && r <= 1, "asvd sensitivity: grid ratio {} is outside (0, 1]", r);
  std::vector<BlockStats> stats = collect_block_stats(m, fit, {false, true});
  out.base_nll = windows_nll(m, score);
  std::vector<std::pair<int, int>> todo;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int kind = 0; kind < kLinearsPerBlock; kind++)
      if (targets.match(linear_name(l, LinearKind(kind)))) todo.push_back({l, kind});
  Progress prog("asvd sensitivity", int64_t(todo.size()), "linear");
  for (size_t t = 0; t < todo.size(); t++) {
    auto [l, kind] = todo[t];
    Linear& lin = m.blocks[size_t(l)].lin[size_t(kind)];
    AsvdSensitivityRow row{linear_name(l, LinearKind(kind)), lin.out(), lin.in(), {}};
    std::vector<float> W = lin.w->dense();
    std::vector<double> s = asvd_scales(stats[size_t(l)].of(LinearKind(kind)).mean_abs(), alpha);
    Svd svd = asvd_svd(W.data(), row.m, row.n, s, row.linear);  // one SVD serves every ratio of the grid
    for (double r : grid) {
      int64_t k = ratio_rank(r, row.m, row.n);
      if (planned_params(k, row.m, row.n) == row.m * row.n) {  // this ratio keeps it dense
        row.nll.push_back(std::numeric_limits<double>::quiet_NaN());
        continue;
      }
      WeightSwap swap(lin, make_lowrank(asvd_split(svd, s, k), FactorDtype::F32));
      row.nll.push_back(windows_nll(m, score));
    }
    out.rows.push_back(std::move(row));
    if (progress) prog.update(int64_t(t + 1));
  }
  if (progress) prog.finish();
  return out;
}

std::map<std::string, double> asvd_allocate(const AsvdSensitivity& sens, double ratio) {
  // Options per Linear: every grid ratio whose factors pay, plus "dense" (cost m·n, no loss).
  std::vector<BudgetItem> items;
  std::vector<std::vector<double>> option_ratio;  // 0 = dense
  int64_t budget = 0;
  for (const auto& r : sens.rows) {
    BudgetItem it{r.linear, {r.m * r.n}, {0.0}};
    std::vector<double> ratios = {0.0};
    for (size_t g = 0; g < sens.grid.size(); g++) {
      if (std::isnan(r.nll[g])) continue;
      it.cost.push_back(planned_params(ratio_rank(sens.grid[g], r.m, r.n), r.m, r.n));
      it.loss.push_back(r.nll[g] - sens.base_nll);
      ratios.push_back(sens.grid[g]);
    }
    budget += planned_params(ratio_rank(ratio, r.m, r.n), r.m, r.n);  // the uniform plan's cost
    items.push_back(std::move(it));
    option_ratio.push_back(std::move(ratios));
  }
  std::vector<int> pick = allocate_budget(items, budget);
  std::map<std::string, double> out;
  for (size_t i = 0; i < items.size(); i++)
    if (pick[i] > 0) out[items[i].name] = option_ratio[i][size_t(pick[i])];
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Modifier

namespace {

class AsvdModifier final : public BlockModifier {
 public:
  explicit AsvdModifier(const nlohmann::json& st)
      : targets_(Targets::from_stage(st)), dt_(factor_dtype_from_stage(st, "asvd")) {
    alpha_ = stage_real(st, "alpha", 0.5, 0.0, 4.0, "asvd");
    if (st.contains("ratios")) {
      check(st["ratios"].is_object(), "asvd: 'ratios' must map Linear names to ratios");
      for (const auto& [name, v] : st["ratios"].items()) {
        check(v.is_number() && v.get<double>() > 0 && v.get<double>() <= 1, "asvd: ratio {} of {} is outside (0, 1]",
              v.dump(), name);
        per_layer_[name] = v.get<double>();
      }
      has_per_layer_ = true;
    } else {
      ratio_ = RankRule::from_stage(st, "asvd").ratio;
      check(ratio_ > 0, "asvd: needs 'ratio' (the paper's rank rule; 'energy' is not supported)");
    }
  }
  std::string name() const override { return "asvd"; }
  StatsRequest stats_request() const override { return {false, true}; }
  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    for_each_target(b, ctx.layer, targets_, [&](LinearKind kind, const std::string& name, Linear& lin) {
      double ratio = ratio_;
      if (has_per_layer_) {
        auto it = per_layer_.find(name);
        if (it == per_layer_.end()) return;  // the allocation kept it dense
        ratio = it->second;
      }
      const int64_t m = lin.out(), n = lin.in(), k = rank_from_ratio(ratio, m, n, name);
      if (!lowrank_pays_or_report("asvd", name, m, n, k)) return;
      std::vector<float> W = lin.w->dense();
      lin.w = asvd_factorize(W.data(), m, n, ctx.stats.of(kind).mean_abs(), alpha_, k, dt_);
    });
  }

 private:
  Targets targets_;
  FactorDtype dt_;
  double alpha_ = 0.5, ratio_ = 0;
  bool has_per_layer_ = false;
  std::map<std::string, double> per_layer_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_asvd_modifier(const nlohmann::json& stage) {
  return std::make_unique<AsvdModifier>(stage);
}

}  // namespace lmp

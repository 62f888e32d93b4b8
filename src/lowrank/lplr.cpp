#include "lowrank/lplr.h"

#include <lapacke.h>

#include <cmath>
#include <random>

#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

std::unique_ptr<LowRankMatrix> lplr_factorize(const float* W, int64_t m, int64_t n, const LplrOptions& o,
                                              const std::string& what) {
  const int64_t k = o.rank;
  check_rank(k, m, n, what);
  check(QIntMatrix::supported(o.grid_a) && QIntMatrix::supported(o.grid_b), "{}: unsupported factor grid", what);
  // 1. Y (m, k) = W·S
  std::vector<double> Y(size_t(m * k));
  if (o.svd_sketch) {  // S = V_k Σ_k^{-1/2}: Y = U_k √Σ_k, the first factor of the plain SVD split
    Svd svd = thin_svd(to_double(W, size_t(m * n)), m, n, what);
    Factors f = split_sqrt(svd, k);
    Y.assign(f.A.begin(), f.A.end());
  } else {
    std::mt19937_64 rng(o.seed);
    std::normal_distribution<double> N(0.0, 1.0 / std::sqrt(double(k)));
    std::vector<double> S(size_t(n * k));  // (n, k)
    for (double& v : S) v = N(rng);
    for (int64_t i = 0; i < m; i++)
      for (int64_t c = 0; c < n; c++) {
        const double w = W[i * n + c];
        for (int64_t j = 0; j < k; j++) Y[size_t(i * k + j)] += w * S[size_t(c * k + j)];
      }
  }
  // 2. L = Q₁(Y)
  std::vector<float> Yf(Y.begin(), Y.end());
  auto L = QIntMatrix::quantize(m, k, Yf.data(), o.grid_a);
  // 3. R = argmin ‖L̂·Z − W‖_F (L̂ the dequantized L): dgelsd overwrites the (m, n) right-hand side with Z in its
  //    first k rows.
  std::vector<float> Lf = L->dense();
  std::vector<double> Ld(Lf.begin(), Lf.end()), RW = to_double(W, size_t(m * n)), sv(static_cast<size_t>(k));
  lapack_int rank_found = 0;
  lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, lapack_int(m), lapack_int(k), lapack_int(n), Ld.data(),
                                   lapack_int(k), RW.data(), lapack_int(n), sv.data(), -1.0, &rank_found);
  check(info == 0, "{}: LAPACK dgelsd failed (info {})", what, int(info));
  std::vector<float> R(RW.begin(), RW.begin() + k * n);  // (k, n)
  // 4. R̂ = Q₂(R)
  auto Rq = QIntMatrix::quantize(k, n, R.data(), o.grid_b);
  return std::make_unique<LowRankMatrix>(std::move(L), std::move(Rq));
}

namespace {

class LplrModifier final : public BlockModifier {
 public:
  explicit LplrModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    rule_ = RankRule::from_stage(st, "lplr");
    check(rule_.ratio > 0, "lplr: needs 'ratio' ('energy' is not supported)");
    o_.grid_a = grid_from_stage(st, "lplr");
    o_.grid_b = o_.grid_a;
    if (st.contains("bits_b")) {
      nlohmann::json sb = st;
      sb["bits"] = st["bits_b"];
      o_.grid_b = grid_from_stage(sb, "lplr (bits_b)");
    }
    std::string sketch = st.value("sketch", std::string("gaussian"));
    check(sketch == "gaussian" || sketch == "svd", "lplr: sketch '{}' is not supported (gaussian or svd)", sketch);
    o_.svd_sketch = sketch == "svd";
    o_.seed = uint64_t(stage_int(st, "seed", 0, 0, 1L << 62, "lplr"));
  }
  std::string name() const override { return "lplr"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind kind, const std::string& name, Linear& lin) {
      const int64_t m = lin.out(), n = lin.in();
      LplrOptions o = o_;
      o.rank = rank_from_ratio(rule_.ratio, m, n, name);
      o.seed = o_.seed + uint64_t(ctx.layer * kLinearsPerBlock + int(kind));  // a different sketch per Linear
      if (!lowrank_pays_or_report("lplr", name, m, n, o.rank)) return;
      std::vector<float> W = lin.w->dense();
      lin.w = lplr_factorize(W.data(), m, n, o, name);
    });
  }

 private:
  Targets targets_;
  RankRule rule_;
  LplrOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_lplr_modifier(const nlohmann::json& stage) {
  return std::make_unique<LplrModifier>(stage);
}

}  // namespace lmp

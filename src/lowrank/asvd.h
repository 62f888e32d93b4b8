// ASVD (Yuan, Shang, Song, Wu, Yan, Sun 2023, "ASVD: Activation-aware Singular Value Decomposition for
// Compressing Large Language Models", arXiv 2312.05821). Input channels with large activations matter more
// for the output Y = X·Wᵀ than their weights show, so the SVD is taken of W scaled by them:
//   S = diag(s),  s_j = (mean_t |x_tj|)^α            (α = 0.5; calib/stats LinearStats::mean_abs)
//   W·S = U Σ Vᵀ,  keep rank k                       (lowrank/truncated_svd: k from the parameter ratio)
//   W ≈ U_k Σ_k V_kᵀ S⁻¹,  stored A = U_k √Σ_k,  B = √Σ_k V_kᵀ S⁻¹   (the scaling undone in the second factor)
// Channels never active (mean |x| = 0) get s_j = 10⁻⁶·max s so S stays invertible.
// Stored: a LowRankMatrix of f32 (or f16) factors.
//
// Sensitivity-based rank allocation (the paper's "sensitivity-based truncation rank searching"): for every
// targeted Linear and every ratio of a grid, the calibration-window perplexity (a held-out subset of the
// calibration text, NOT the block-output error) of the model with only that Linear factorized; then per-layer
// ratios are chosen to meet the parameter count of the uniform ratio at the smallest total Δnll
// (lowrank/layer_search allocate_budget: greedy Lagrangian exchange; "dense" is always an option).
// The search returns plain data; the chosen ratios go into the recipe stage ("ratios") that applies them.
//
// Recipe stage: {"modifier": "asvd", "ratio": R, "alpha": 0.5, "ratios": {"<linear>": r, ...} (optional:
// then only the listed Linears are factorized, each at its own ratio), "factor_dtype", "targets", "ignore"}.
#pragma once
#include <map>
#include <memory>

#include "calib/pipeline.h"
#include "calib/targets.h"
#include "lowrank/truncated_svd.h"

namespace lmp {

// s_j = (mean|x_j|)^α, floored at 10⁻⁶·max s.
std::vector<double> asvd_scales(const std::vector<double>& mean_abs, double alpha);
// The SVD of W·S (m × n) and its rank-k factors with the scaling undone (B ← B·S⁻¹); asvd_factors = both.
Svd asvd_svd(const float* W, int64_t m, int64_t n, const std::vector<double>& s, const std::string& what);
Factors asvd_split(const Svd& svd, const std::vector<double>& s, int64_t k);
// The rank-k factors of W (m × n) for column scales s (n); what names the matrix in errors.
Factors asvd_factors(const float* W, int64_t m, int64_t n, const std::vector<double>& s, int64_t k,
                     const std::string& what = "asvd");
std::unique_ptr<LowRankMatrix> asvd_factorize(const float* W, int64_t m, int64_t n, const std::vector<double>& mean_abs,
                                              double alpha, int64_t k, FactorDtype dt = FactorDtype::F32);

struct AsvdSensitivityRow {
  std::string linear;
  int64_t m = 0, n = 0;
  std::vector<double> nll;  // per grid ratio; NaN where the ratio keeps the Linear dense
};
struct AsvdSensitivity {
  std::vector<double> grid;
  double base_nll = 0;
  std::vector<AsvdSensitivityRow> rows;
  nlohmann::json to_json() const;
};
// Sensitivity of every targeted Linear of m (left unchanged): scales from the statistics of `fit` windows,
// ppl on `score` windows (a held-out split of the calibration text).
AsvdSensitivity asvd_sensitivity(Model& m, const Samples& fit, const Samples& score, const std::vector<double>& grid,
                                 double alpha, const Targets& targets, bool progress = true);
// Per-Linear ratios (Linears absent from the map stay dense) whose parameters total at most those of the
// uniform ratio `ratio` over the same Linears.
std::map<std::string, double> asvd_allocate(const AsvdSensitivity& sens, double ratio);

std::unique_ptr<BlockModifier> make_asvd_modifier(const nlohmann::json& stage);

}  // namespace lmp

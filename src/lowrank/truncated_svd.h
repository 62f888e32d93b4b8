// The machinery every low-rank method shares (SVD, ASVD, LASER, LPLR): the thin SVD through LAPACK, the rank
// rules, the split of the singular values between the two factors, and building the stored LowRankMatrix.
//
// Truncated SVD (Eckart–Young–Mirsky): with M = U Σ Vᵀ (σ₁ ≥ σ₂ ≥ ...), the best rank-k approximation in
// Frobenius norm is M_k = U_k Σ_k V_kᵀ, and ‖M − M_k‖_F² = Σ_{i>k} σ_i².
// Factor split (documented choice): A = U_k √Σ_k (m × k), B = √Σ_k V_kᵀ (k × n), so W ≈ A·B with both factors
// of the same scale (‖A‖_F = ‖B‖_F = √Σσ_i): neither factor has a much larger range than the other, which is
// what a later per-group quantization of the factors (RTN on a factorized model) wants.
//
// Rank rules: a parameter ratio R keeps k = ⌊R·m·n/(m+n)⌋ (the factors then hold ≤ R·m·n entries; the
// definition of models/README.md), R ∈ (0, 1]; an energy fraction E keeps the smallest k with
// Σ_{i≤k} σ_i² ≥ E·Σ σ_i², E ∈ (0, 1). A Linear whose factors would not be smaller than the matrix
// (k(m+n) ≥ m·n, kernels/lowrank.h) is kept dense and reported on stderr.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/lowrank.h"
#include "kernels/weight.h"

namespace lmp {

// Thin SVD of M (m × n, row-major): M = U diag(s) Vt, p = min(m, n); U (m, p), s (p) descending, Vt (p, n).
struct Svd {
  int64_t m = 0, n = 0, p = 0;
  std::vector<double> U, s, Vt;
};
// LAPACKE_dgesdd in double; `what` names the matrix in errors.
Svd thin_svd(const std::vector<double>& M, int64_t m, int64_t n, const std::string& what);
std::vector<double> to_double(const float* W, size_t count);

// Throws lmp::Error unless 1 ≤ k < min(m, n).
void check_rank(int64_t k, int64_t m, int64_t n, const std::string& what);
// ⌊ratio·m·n/(m+n)⌋ without checks, and the entries a Linear then holds: k(m+n) when the factors pay
// (1 ≤ k < min(m, n), k(m+n) < m·n), else m·n (kept dense).
int64_t ratio_rank(double ratio, int64_t m, int64_t n);
int64_t planned_params(int64_t k, int64_t m, int64_t n);
// ratio_rank with checks; throws for ratio ∉ (0, 1] or a ratio too small to keep one rank.
int64_t rank_from_ratio(double ratio, int64_t m, int64_t n, const std::string& what);
// Smallest k with Σ_{i≤k} σ² ≥ energy·Σσ²; throws for energy ∉ (0, 1).
int64_t rank_from_energy(double energy, const std::vector<double>& s, const std::string& what);

// How a stage picks the rank of each Linear: a parameter ratio or an energy fraction (exactly one).
struct RankRule {
  double ratio = 0;   // > 0: rank_from_ratio
  double energy = 0;  // > 0: rank_from_energy
  bool needs_spectrum() const { return energy > 0; }
  int64_t rank(int64_t m, int64_t n, const std::vector<double>& s, const std::string& what) const;
  // Reads "ratio" / "energy" from a recipe stage (exactly one unless ratio_default > 0 supplies the ratio).
  static RankRule from_stage(const nlohmann::json& st, const char* modifier, double ratio_default = 0);
};

// The factors of a rank-k truncation in f32: A = U_k √Σ_k (m, k), B = √Σ_k V_kᵀ (k, n).
struct Factors {
  int64_t m = 0, n = 0, k = 0;
  std::vector<float> A, B;
};
Factors split_sqrt(const Svd& svd, int64_t k);
// Rank-k truncation of W (m × n) in one call (plain SVD; what LASER and the SVD baseline use).
Factors truncated_svd(const float* W, int64_t m, int64_t n, int64_t k, const std::string& what);

// Stored dtype of unquantized factors: "f32" (default) or "f16".
enum class FactorDtype { F32, F16 };
FactorDtype factor_dtype_from_stage(const nlohmann::json& st, const char* modifier);
WeightPtr store_matrix(int64_t rows, int64_t cols, const float* v, FactorDtype dt);
std::unique_ptr<LowRankMatrix> make_lowrank(const Factors& f, FactorDtype dt);

// For modifiers: true when factors of rank k pay; otherwise prints "<modifier>: <what> kept dense (...)"
// on stderr so the choice is never silent.
bool lowrank_pays_or_report(const char* modifier, const std::string& what, int64_t m, int64_t n, int64_t k);

}  // namespace lmp

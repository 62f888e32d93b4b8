#include "lowrank/truncated_svd.h"

#include <lapacke.h>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "kernels/dense.h"

namespace lmp {

std::vector<double> to_double(const float* W, size_t count) { return std::vector<double>(W, W + count); }

Svd thin_svd(const std::vector<double>& M, int64_t m, int64_t n, const std::string& what) {
  check(m >= 1 && n >= 1 && int64_t(M.size()) == m * n, "{}: SVD of a {}x{} matrix with {} values", what, m, n,
        M.size());
  Svd r;
  r.m = m, r.n = n, r.p = std::min(m, n);
  r.U.resize(size_t(m * r.p)), r.s.resize(size_t(r.p)), r.Vt.resize(size_t(r.p * n));
  std::vector<double> a = M;  // gesdd destroys its input
  lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', lapack_int(m), lapack_int(n), a.data(), lapack_int(n),
                                   r.s.data(), r.U.data(), lapack_int(r.p), r.Vt.data(), lapack_int(n));
  check(info == 0, "{}: LAPACK dgesdd failed (info {}{})", what, int(info),
        info > 0 ? ", did not converge — non-finite weights?" : "");
  return r;
}

void check_rank(int64_t k, int64_t m, int64_t n, const std::string& what) {
  check(k >= 1 && k < std::min(m, n), "{}: rank {} is outside [1, {}) for a {}x{} matrix", what, k, std::min(m, n),
        m, n);
}

int64_t ratio_rank(double ratio, int64_t m, int64_t n) {
  return int64_t(std::floor(ratio * double(m) * double(n) / double(m + n)));
}

int64_t planned_params(int64_t k, int64_t m, int64_t n) {
  return k >= 1 && k < std::min(m, n) && lowrank_pays(m, n, k) ? k * (m + n) : m * n;
}

int64_t rank_from_ratio(double ratio, int64_t m, int64_t n, const std::string& what) {
  check(ratio > 0 && ratio <= 1, "{}: ratio {} is outside (0, 1] (fraction of the matrix's parameters kept)", what,
        ratio);
  int64_t k = ratio_rank(ratio, m, n);
  check(k >= 1, "{}: ratio {} keeps rank {} of a {}x{} matrix; need at least rank 1", what, ratio, k, m, n);
  return k;
}

int64_t rank_from_energy(double energy, const std::vector<double>& s, const std::string& what) {
  check(energy > 0 && energy < 1, "{}: energy {} is outside (0, 1)", what, energy);
  double total = 0, acc = 0;
  for (double v : s) total += v * v;
  int64_t k = 0;
  while (k < int64_t(s.size()) && acc < energy * total) acc += s[size_t(k)] * s[size_t(k)], k++;
  return std::max<int64_t>(k, 1);
}

int64_t RankRule::rank(int64_t m, int64_t n, const std::vector<double>& s, const std::string& what) const {
  return ratio > 0 ? rank_from_ratio(ratio, m, n, what) : rank_from_energy(energy, s, what);
}

RankRule RankRule::from_stage(const nlohmann::json& st, const char* mod, double ratio_default) {
  RankRule r;
  auto num = [&](const char* key) {
    check(st[key].is_number(), "{}: '{}' must be a number, got {}", mod, key, st[key].dump());
    return st[key].get<double>();
  };
  bool has_r = st.contains("ratio"), has_e = st.contains("energy");
  check(!(has_r && has_e), "{}: give either 'ratio' or 'energy', not both", mod);
  if (has_e) {
    r.energy = num("energy");
    check(r.energy > 0 && r.energy < 1, "{}: energy {} is outside (0, 1)", mod, r.energy);
  } else {
    check(has_r || ratio_default > 0, "{}: needs 'ratio' (fraction of parameters kept, in (0, 1]) or 'energy'", mod);
    r.ratio = has_r ? num("ratio") : ratio_default;
    check(r.ratio > 0 && r.ratio <= 1, "{}: ratio {} is outside (0, 1] (fraction of the matrix's parameters kept)",
          mod, r.ratio);
  }
  return r;
}

Factors split_sqrt(const Svd& svd, int64_t k) {
  check_rank(k, svd.m, svd.n, "split_sqrt");
  Factors f;
  f.m = svd.m, f.n = svd.n, f.k = k;
  f.A.resize(size_t(f.m * k)), f.B.resize(size_t(k * f.n));
  for (int64_t j = 0; j < k; j++) {
    const double r = std::sqrt(svd.s[size_t(j)]);
    for (int64_t i = 0; i < f.m; i++) f.A[size_t(i * k + j)] = float(svd.U[size_t(i * svd.p + j)] * r);  // U_k √Σ_k
    for (int64_t c = 0; c < f.n; c++) f.B[size_t(j * f.n + c)] = float(r * svd.Vt[size_t(j * f.n + c)]);  // √Σ_k V_kᵀ
  }
  return f;
}

Factors truncated_svd(const float* W, int64_t m, int64_t n, int64_t k, const std::string& what) {
  check_rank(k, m, n, what);
  return split_sqrt(thin_svd(to_double(W, size_t(m * n)), m, n, what), k);
}

FactorDtype factor_dtype_from_stage(const nlohmann::json& st, const char* mod) {
  std::string d = st.value("factor_dtype", std::string("f32"));
  if (d == "f32") return FactorDtype::F32;
  if (d == "f16") return FactorDtype::F16;
  fail("{}: factor_dtype '{}' is not supported (f32 or f16; quantize factors with an rtn stage or lplr)", mod, d);
}

WeightPtr store_matrix(int64_t rows, int64_t cols, const float* v, FactorDtype dt) {
  if (dt == FactorDtype::F16) return DenseF16::from_f32(rows, cols, v);
  return std::make_unique<DenseF32>(rows, cols, std::vector<float>(v, v + rows * cols));
}

std::unique_ptr<LowRankMatrix> make_lowrank(const Factors& f, FactorDtype dt) {
  return std::make_unique<LowRankMatrix>(store_matrix(f.m, f.k, f.A.data(), dt), store_matrix(f.k, f.n, f.B.data(), dt));
}

bool lowrank_pays_or_report(const char* mod, const std::string& what, int64_t m, int64_t n, int64_t k) {
  if (k < std::min(m, n) && lowrank_pays(m, n, k)) return true;
  std::fprintf(stderr, "%s: %s kept dense (rank %lld factors hold %lld entries, the matrix %lld)\n", mod, what.c_str(),
               (long long)k, (long long)(k * (m + n)), (long long)(m * n));
  return false;
}

}  // namespace lmp

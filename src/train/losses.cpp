#include "train/losses.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "train/layers.h"

namespace lmp::train {

LossKind parse_loss(const std::string& s) {
  if (s == "ce") return LossKind::CE;
  if (s == "fkl") return LossKind::FKL;
  if (s == "rkl") return LossKind::RKL;
  if (s == "jsd") return LossKind::JSD;
  if (s == "cakld") return LossKind::CAKLD;
  fail("--loss '{}' is not known (choose ce, fkl, rkl, jsd, cakld)", s);
}

const char* loss_name(LossKind k) {
  switch (k) {
    case LossKind::CE: return "ce";
    case LossKind::FKL: return "fkl";
    case LossKind::RKL: return "rkl";
    case LossKind::JSD: return "jsd";
    case LossKind::CAKLD: return "cakld";
  }
  return "?";
}

// log-softmax of one row in double
static void log_softmax(const double* z, int V, double* out) {
  double mx = z[0];
  for (int j = 1; j < V; j++) mx = std::max(mx, z[j]);
  double s = 0;
  for (int j = 0; j < V; j++) s += std::exp(z[j] - mx);
  const double lse = mx + std::log(s);
  for (int j = 0; j < V; j++) out[j] = z[j] - lse;
}

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int* targets, int N, int V, const float* row_weight) {
  int count = 0;
  for (int n = 0; n < N; n++) count += targets[n] >= 0;
  double total = 0;
  const double inv = count ? 1.0 / count : 0.0;
#pragma omp parallel for reduction(+ : total) if (N > 16)
  for (int n = 0; n < N; n++) {
    T* d = dlogits + size_t(n) * V;
    if (targets[n] < 0) {
      std::fill_n(d, V, T(0));
      continue;
    }
    std::vector<double> z(logits + size_t(n) * V, logits + size_t(n + 1) * V), lp(static_cast<size_t>(V));
    log_softmax(z.data(), V, lp.data());
    const double w = row_weight ? double(row_weight[n]) : 1.0;
    total += -w * lp[size_t(targets[n])];
    for (int j = 0; j < V; j++) d[j] = T(w * (std::exp(lp[size_t(j)]) - (j == targets[n])) * inv);
  }
  return total * inv;
}

template <class T>
double kd_loss(LossKind kind, T* dlogits, const T* s_logits, const T* t_logits, const int* mask, int N, int V,
               double beta) {
  check(kind != LossKind::CE, "kd_loss: cross-entropy is not a distillation loss");
  int count = 0;
  for (int n = 0; n < N; n++) count += !mask || mask[n] >= 0;
  const double inv = count ? 1.0 / count : 0.0;
  double total = 0;
#pragma omp parallel for reduction(+ : total) if (N > 16)
  for (int n = 0; n < N; n++) {
    T* d = dlogits + size_t(n) * V;
    if (mask && mask[n] < 0) {
      std::fill_n(d, V, T(0));
      continue;
    }
    std::vector<double> zs(s_logits + size_t(n) * V, s_logits + size_t(n + 1) * V);
    std::vector<double> zt(t_logits + size_t(n) * V, t_logits + size_t(n + 1) * V);
    std::vector<double> lp(static_cast<size_t>(V)), lt(static_cast<size_t>(V)), g(static_cast<size_t>(V));
    log_softmax(zs.data(), V, lp.data());
    log_softmax(zt.data(), V, lt.data());
    double fkl = 0, rkl = 0;
    for (int j = 0; j < V; j++) {
      const double p = std::exp(lp[size_t(j)]), t = std::exp(lt[size_t(j)]);
      fkl += t * (lt[size_t(j)] - lp[size_t(j)]);
      rkl += p * (lp[size_t(j)] - lt[size_t(j)]);
    }
    if (kind == LossKind::JSD) {
      double J = 0, pg = 0;
      for (int j = 0; j < V; j++) {
        const double p = std::exp(lp[size_t(j)]), t = std::exp(lt[size_t(j)]);
        const double m = beta * t + (1 - beta) * p, lm = std::log(std::max(m, 1e-300));
        J += beta * (t > 0 ? t * (lt[size_t(j)] - lm) : 0) + (1 - beta) * (p > 0 ? p * (lp[size_t(j)] - lm) : 0);
        g[size_t(j)] = (1 - beta) * (lp[size_t(j)] - lm);
        pg += p * g[size_t(j)];
      }
      total += J;
      for (int j = 0; j < V; j++) d[j] = T(std::exp(lp[size_t(j)]) * (g[size_t(j)] - pg) * inv);
      continue;
    }
    const double wr = kind == LossKind::RKL ? 1.0 : kind == LossKind::CAKLD ? beta : 0.0;
    const double wf = 1.0 - wr;
    total += wf * fkl + wr * rkl;
    for (int j = 0; j < V; j++) {
      const double p = std::exp(lp[size_t(j)]), t = std::exp(lt[size_t(j)]);
      const double df = p - t, dr = p * (lp[size_t(j)] - lt[size_t(j)] - rkl);
      d[j] = T((wf * df + wr * dr) * inv);
    }
  }
  return total * inv;
}

template <class T>
double teacher_confidence(const T* t_logits, const int* targets, int N, int V) {
  double s = 0;
  int count = 0;
  std::vector<double> z(static_cast<size_t>(V)), lt(static_cast<size_t>(V));
  for (int n = 0; n < N; n++) {
    if (targets[n] < 0) continue;
    for (int j = 0; j < V; j++) z[size_t(j)] = t_logits[size_t(n) * V + j];
    log_softmax(z.data(), V, lt.data());
    s += std::exp(lt[size_t(targets[n])]);
    count++;
  }
  return count ? s / count : 0.0;
}

template <class T>
double hidden_align_loss(T* dhs, T* dP, const T* hs, const T* ht, const T* P, int N, int Cs, int Ct) {
  std::vector<T> e(size_t(N) * Ct);  // (N, Ct) = hs·Pᵀ − ht
  gemm<T>(false, true, N, Ct, Cs, T(1), hs, Cs, P, Cs, T(0), e.data(), Ct);
  double L = 0;
  for (size_t i = 0; i < e.size(); i++) {
    e[i] -= ht[i];
    L += double(e[i]) * e[i];
  }
  const double k = 1.0 / (double(N) * Ct);
  // dL/de = 2k·e ; dhs += 2k·e·P ; dP += 2k·eᵀ·hs
  if (dhs) gemm<T>(false, false, N, Cs, Ct, T(2 * k), e.data(), Ct, P, Cs, T(1), dhs, Cs);
  if (dP) gemm<T>(true, false, Ct, Cs, N, T(2 * k), e.data(), Ct, hs, Cs, T(1), dP, Cs);
  return L * k;
}

template <class T>
double token_contrastive_loss(T* dhs, const T* hs, const T* ht, int N, int C, double tau) {
  check(tau > 0, "contrastive distillation: temperature tau must be positive (got {})", tau);
  auto normalize = [C](const T* h, std::vector<T>& u, std::vector<double>& norm, int n) {
    u.resize(size_t(n) * C);
    norm.resize(size_t(n));
    for (int i = 0; i < n; i++) {
      double s = 0;
      for (int c = 0; c < C; c++) s += double(h[size_t(i) * C + c]) * h[size_t(i) * C + c];
      norm[size_t(i)] = std::max(std::sqrt(s), 1e-12);
      for (int c = 0; c < C; c++) u[size_t(i) * C + c] = T(h[size_t(i) * C + c] / norm[size_t(i)]);
    }
  };
  std::vector<T> u, v;
  std::vector<double> nu, nv;
  normalize(hs, u, nu, N);
  normalize(ht, v, nv, N);
  std::vector<T> S(size_t(N) * N);  // s_ij = u_i·v_j / τ, then (p_ij − δ_ij) / (Nτ)
  gemm<T>(false, true, N, N, C, T(1.0 / tau), u.data(), C, v.data(), C, T(0), S.data(), N);
  double L = 0;
#pragma omp parallel for reduction(+ : L) if (N >= 256)
  for (int i = 0; i < N; i++) {
    T* row = S.data() + size_t(i) * N;
    double mx = -1e300, z = 0;
    for (int j = 0; j < N; j++) mx = std::max(mx, double(row[j]));
    for (int j = 0; j < N; j++) z += std::exp(double(row[j]) - mx);
    L += mx + std::log(z) - double(row[i]);
    for (int j = 0; j < N; j++) row[j] = T((std::exp(double(row[j]) - mx) / z - (i == j)) / (double(N) * tau));
  }
  if (dhs) {
    std::vector<T> g(size_t(N) * C);  // g_i = Σ_j S_ij v_j
    gemm<T>(false, false, N, C, N, T(1), S.data(), N, v.data(), C, T(0), g.data(), C);
    for (int i = 0; i < N; i++) {
      double ug = 0;
      for (int c = 0; c < C; c++) ug += double(u[size_t(i) * C + c]) * g[size_t(i) * C + c];
      for (int c = 0; c < C; c++)
        dhs[size_t(i) * C + c] += T((g[size_t(i) * C + c] - u[size_t(i) * C + c] * ug) / nu[size_t(i)]);
    }
  }
  return L / N;
}

#define LMP_INSTANTIATE(T)                                                                               \
  template double cross_entropy<T>(T*, const T*, const int*, int, int, const float*);                                 \
  template double kd_loss<T>(LossKind, T*, const T*, const T*, const int*, int, int, double);           \
  template double teacher_confidence<T>(const T*, const int*, int, int);                                \
  template double hidden_align_loss<T>(T*, T*, const T*, const T*, const T*, int, int, int);         \
  template double token_contrastive_loss<T>(T*, const T*, const T*, int, int, double);
LMP_INSTANTIATE(float)
LMP_INSTANTIATE(double)
#undef LMP_INSTANTIATE

}  // namespace lmp::train

#include "calib/stats.h"

#include <cblas.h>
#include <cmath>

namespace lmp {

void LinearStats::init(int64_t n_in, const StatsRequest& r) {
  in = n_in;
  count = 0;
  xxt.assign(r.hessian ? size_t(in * in) : 0, 0.0);
  abs_sum.assign(r.channels ? size_t(in) : 0, 0.0);
  sq_sum.assign(r.channels ? size_t(in) : 0, 0.0);
  abs_max.assign(r.channels ? size_t(in) : 0, 0.f);
}

void LinearStats::add(const float* X, int64_t n) {
  if (!xxt.empty()) {
    // Σ xxᵀ of this batch in f32 (syrk), added to the f64 accumulator.
    std::vector<float> G(size_t(in * in), 0.f);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(in), int(n), 1.0f, X, int(in), 0.0f, G.data(), int(in));
    for (int64_t i = 0; i < in; i++)
      for (int64_t j = i; j < in; j++) {
        double g = G[size_t(i * in + j)];
        xxt[size_t(i * in + j)] += g;
        if (j != i) xxt[size_t(j * in + i)] += g;
      }
  }
  if (!abs_sum.empty())
    for (int64_t t = 0; t < n; t++)
      for (int64_t j = 0; j < in; j++) {
        float x = X[t * in + j];
        abs_sum[size_t(j)] += std::fabs(x);
        sq_sum[size_t(j)] += double(x) * x;
        abs_max[size_t(j)] = std::max(abs_max[size_t(j)], std::fabs(x));
      }
  count += n;
}

void LinearStats::merge(const LinearStats& o) {
  for (size_t i = 0; i < xxt.size(); i++) xxt[i] += o.xxt[i];
  for (size_t i = 0; i < abs_sum.size(); i++) {
    abs_sum[i] += o.abs_sum[i];
    sq_sum[i] += o.sq_sum[i];
    abs_max[i] = std::max(abs_max[i], o.abs_max[i]);
  }
  count += o.count;
}

std::vector<double> LinearStats::hessian() const {
  std::vector<double> H(xxt.size());
  double f = count > 0 ? 2.0 / double(count) : 0.0;
  for (size_t i = 0; i < H.size(); i++) H[i] = xxt[i] * f;
  return H;
}

std::vector<double> LinearStats::mean_abs() const {
  std::vector<double> m(abs_sum.size());
  for (size_t i = 0; i < m.size(); i++) m[i] = abs_sum[i] / double(std::max<int64_t>(count, 1));
  return m;
}

std::vector<double> LinearStats::l2_norm() const {
  std::vector<double> m(sq_sum.size());
  for (size_t i = 0; i < m.size(); i++) m[i] = std::sqrt(sq_sum[i]);
  return m;
}

}  // namespace lmp

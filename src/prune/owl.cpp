#include "prune/owl.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "calib/stats.h"
#include "model/forward.h"

namespace lmp {

BlockStats block_stats_and_advance(const Model& m, int l, std::vector<std::vector<float>>& xs, int L,
                                   const StatsRequest& req) {
  const ModelConfig& c = m.cfg;
  const int64_t widths[kInputSites] = {c.hidden, int64_t(c.heads(l)) * c.head_dim, c.hidden, c.ffn(l)};
  std::vector<BlockStats> per(xs.size());
#pragma omp parallel
  {
    Forward fw(m);
#pragma omp for schedule(dynamic, 1)
    for (size_t s = 0; s < xs.size(); s++) {
      for (int k = 0; k < kInputSites; k++) per[s].site[size_t(k)].init(widths[k], req);
      LinearHook hook = [&](int, LinearKind kind, const float* X, int64_t n, int64_t) {
        if (kind == LinearKind::K || kind == LinearKind::V || kind == LinearKind::Up) return;  // shared inputs
        per[s].site[size_t(kInputSite[size_t(kind)])].add(X, n);
      };
      KVCache cache(m.cfg, L);
      fw.block(l, xs[s].data(), L, cache, &hook);
    }
  }
  BlockStats total;
  for (int k = 0; k < kInputSites; k++) total.site[size_t(k)].init(widths[k], req);
  for (const auto& p : per)
    for (int k = 0; k < kInputSites; k++) total.site[size_t(k)].merge(p.site[size_t(k)]);
  return total;
}

namespace {

// D_l = fraction of Wanda scores above M · mean, over the layer's targeted Linears.
double outlier_ratio(const Model& m, int l, const BlockStats& st, double M, const Targets& targets) {
  std::vector<float> A;
  for (int k = 0; k < kLinearsPerBlock; k++) {
    if (!targets.match(linear_name(l, LinearKind(k)))) continue;
    const Linear& lin = m.blocks[size_t(l)].lin[size_t(k)];
    std::vector<float> W = lin.w->dense();
    std::vector<double> xn = st.of(LinearKind(k)).l2_norm();
    for (int64_t r = 0; r < lin.out(); r++)
      for (int64_t c = 0; c < lin.in(); c++) A.push_back(std::fabs(W[size_t(r * lin.in() + c)]) * float(xn[size_t(c)]));
  }
  if (A.empty()) return 0;
  const double mean = std::accumulate(A.begin(), A.end(), 0.0) / double(A.size());
  return double(std::count_if(A.begin(), A.end(), [&](float a) { return a > M * mean; })) / double(A.size());
}

}  // namespace

std::vector<double> owl_outlier_ratios(const Model& m, const std::vector<std::vector<float>>& inputs, int L,
                                       double M, const Targets& targets) {
  std::vector<std::vector<float>> xs = inputs;  // the pipeline keeps its own copy
  std::vector<double> D;
  for (int l = 0; l < m.cfg.n_layers; l++) {
    BlockStats st = block_stats_and_advance(m, l, xs, L, StatsRequest{false, true});
    D.push_back(outlier_ratio(m, l, st, M, targets));
  }
  return D;
}

std::vector<double> owl_sparsities(const std::vector<double>& D, double target, double lambda) {
  std::vector<double> s(D.size(), target);
  if (D.empty()) return s;
  const auto [lo, hi] = std::minmax_element(D.begin(), D.end());
  if (*hi - *lo <= 0) return s;
  std::vector<double> d(D.size());
  for (size_t i = 0; i < D.size(); i++) d[i] = (D[i] - *lo) / (*hi - *lo) * 2 * lambda;
  const double mean = std::accumulate(d.begin(), d.end(), 0.0) / double(d.size());
  for (size_t i = 0; i < D.size(); i++) s[i] = 1.0 - (d[i] - mean + (1.0 - target));
  return s;
}

}  // namespace lmp

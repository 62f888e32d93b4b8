#include "lowrank/layer_search.h"

#include <cblas.h>
#include <omp.h>

#include <limits>

#include "core/error.h"
#include "eval/perplexity.h"
#include "model/forward.h"

namespace lmp {

double windows_nll(const Model& m, const Samples& windows) {
  check(!windows.empty(), "low-rank search: no calibration windows");
  std::vector<int> ids;
  for (const auto& w : windows) ids.insert(ids.end(), w.begin(), w.end());
  PplOptions o;
  o.ctx = int(windows[0].size());
  o.progress = false;
  return perplexity(m, ids, o).nll;
}

std::vector<BlockStats> collect_block_stats(const Model& m, const Samples& windows, const StatsRequest& req) {
  const ModelConfig& c = m.cfg;
  const int L = c.n_layers;
  auto init = [&](std::vector<BlockStats>& v) {
    v.resize(size_t(L));
    for (int l = 0; l < L; l++) {
      const int64_t widths[kInputSites] = {c.hidden, int64_t(c.heads(l)) * c.head_dim, c.hidden, c.ffn(l)};
      for (int s = 0; s < kInputSites; s++) v[size_t(l)].site[size_t(s)].init(widths[s], req);
    }
  };
  std::vector<std::vector<BlockStats>> per(windows.size());
  std::exception_ptr err;
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
#pragma omp parallel
  {
    Forward fw(m);
    std::vector<float> logits(size_t(c.vocab));
#pragma omp for schedule(dynamic, 1)
    for (size_t w = 0; w < windows.size(); w++) {
      try {
        init(per[w]);
        KVCache cache(c, int(windows[w].size()));
        // q/k/v (and gate/up) share an input: count it once, at the first Linear of the site.
        LinearHook hook = [&](int layer, LinearKind kind, const float* X, int64_t n, int64_t) {
          if (kind == LinearKind::K || kind == LinearKind::V || kind == LinearKind::Up) return;
          per[w][size_t(layer)].site[size_t(kInputSite[size_t(kind)])].add(X, n);
        };
        fw.tokens(windows[w].data(), int(windows[w].size()), cache, logits.data(), true, &hook);
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
    }
  }
  openblas_set_num_threads(blas_threads);
  if (err) std::rethrow_exception(err);
  std::vector<BlockStats> total;
  init(total);
  for (const auto& p : per)
    for (int l = 0; l < L; l++)
      for (int s = 0; s < kInputSites; s++) total[size_t(l)].site[size_t(s)].merge(p[size_t(l)].site[size_t(s)]);
  return total;
}

std::vector<int> allocate_budget(const std::vector<BudgetItem>& items, int64_t budget) {
  std::vector<int> pick(items.size());
  int64_t total = 0, floor_total = 0;
  for (size_t i = 0; i < items.size(); i++) {
    const auto& it = items[i];
    check(!it.cost.empty() && it.cost.size() == it.loss.size(), "allocate_budget: {} has {} costs and {} losses",
          it.name, it.cost.size(), it.loss.size());
    int hi = 0, lo = 0;
    for (int o = 1; o < int(it.cost.size()); o++) {
      if (it.cost[size_t(o)] > it.cost[size_t(hi)]) hi = o;
      if (it.cost[size_t(o)] < it.cost[size_t(lo)]) lo = o;
    }
    pick[i] = hi;
    total += it.cost[size_t(hi)];
    floor_total += it.cost[size_t(lo)];
  }
  check(floor_total <= budget, "rank allocation: the budget of {} parameters is below {}, the cheapest option of every "
        "layer (add smaller ratios to the grid)", budget, floor_total);
  while (total > budget) {
    double best = std::numeric_limits<double>::infinity();
    size_t bi = 0;
    int bo = -1;
    for (size_t i = 0; i < items.size(); i++) {
      const auto& it = items[i];
      const int64_t c0 = it.cost[size_t(pick[i])];
      const double l0 = it.loss[size_t(pick[i])];
      for (int o = 0; o < int(it.cost.size()); o++) {
        const int64_t saved = c0 - it.cost[size_t(o)];
        if (saved <= 0) continue;
        double rate = (it.loss[size_t(o)] - l0) / double(saved);  // loss per parameter saved
        if (rate < best) best = rate, bi = i, bo = o;
      }
    }
    check(bo >= 0, "rank allocation: no finite move left to meet the budget of {} parameters", budget);
    total -= items[bi].cost[size_t(pick[bi])] - items[bi].cost[size_t(bo)];
    pick[bi] = bo;
  }
  return pick;
}

}  // namespace lmp

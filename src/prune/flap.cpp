#include "prune/flap.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <exception>
#include <numeric>
#include <omp.h>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"
#include "prune/structured_common.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// Statistics: Σx, Σx² of o_proj / down_proj inputs per layer, over every calibration token, from one pass
// of the unpruned model (per-thread sums over a static split of samples, merged in thread order).

namespace {
struct Sums {
  std::vector<std::vector<double>> o1, o2, d1, d2;  // (L) × width
  int64_t tokens = 0;
  explicit Sums(const Model& m) {
    for (int l = 0; l < m.cfg.n_layers; l++) {
      size_t ow = size_t(m.cfg.heads(l)) * m.cfg.head_dim, dw = size_t(m.cfg.ffn(l));
      o1.emplace_back(ow), o2.emplace_back(ow), d1.emplace_back(dw), d2.emplace_back(dw);
    }
  }
  static void add(std::vector<double>& s1, std::vector<double>& s2, const float* X, int64_t n) {
    const size_t w = s1.size();
    for (int64_t t = 0; t < n; t++)
      for (size_t j = 0; j < w; j++) {
        double x = X[size_t(t) * w + j];
        s1[j] += x, s2[j] += x * x;
      }
  }
};
}  // namespace

FlapStats flap_statistics(const Model& m, const Samples& samples, bool progress) {
  check(!samples.empty(), "FLAP: no calibration samples");
  const int L = int(samples[0].size());
  check(L <= m.cfg.max_pos, "FLAP: --seqlen {} exceeds max_position_embeddings {}", L, m.cfg.max_pos);
  const int nthreads = omp_get_max_threads();
  std::vector<Sums> per(static_cast<size_t>(nthreads), Sums(m));
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  Progress prog("FLAP statistics", long(samples.size()), "sample");
  long done = 0;
  std::exception_ptr err;
#pragma omp parallel num_threads(nthreads)
  {
    Sums& my = per[size_t(omp_get_thread_num())];
    Forward fw(m);
    std::vector<float> logits(size_t(m.cfg.vocab));
    LinearHook hook = [&](int l, LinearKind k, const float* X, int64_t n, int64_t) {
      if (k == LinearKind::O) Sums::add(my.o1[size_t(l)], my.o2[size_t(l)], X, n);
      if (k == LinearKind::Down) Sums::add(my.d1[size_t(l)], my.d2[size_t(l)], X, n);
    };
#pragma omp for schedule(static)
    for (size_t s = 0; s < samples.size(); s++) {
      try {
        KVCache cache(m.cfg, L);
        fw.tokens(samples[s].data(), L, cache, logits.data(), true, &hook);
        my.tokens += L;
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
#pragma omp atomic
      done++;
      if (progress && omp_get_thread_num() == 0) prog.update(done);
    }
  }
  openblas_set_num_threads(blas_threads);
  if (err) std::rethrow_exception(err);
  if (progress) prog.finish();
  Sums total(m);
  for (const Sums& p : per) {
    total.tokens += p.tokens;
    for (int l = 0; l < m.cfg.n_layers; l++) {
      for (size_t j = 0; j < total.o1[size_t(l)].size(); j++)
        total.o1[size_t(l)][j] += p.o1[size_t(l)][j], total.o2[size_t(l)][j] += p.o2[size_t(l)][j];
      for (size_t j = 0; j < total.d1[size_t(l)].size(); j++)
        total.d1[size_t(l)][j] += p.d1[size_t(l)][j], total.d2[size_t(l)][j] += p.d2[size_t(l)][j];
    }
  }
  FlapStats st;
  const double N = double(total.tokens);
  auto finish = [&](const std::vector<double>& s1, const std::vector<double>& s2, std::vector<double>& mean,
                    std::vector<double>& var) {
    mean.resize(s1.size()), var.resize(s1.size());
    for (size_t j = 0; j < s1.size(); j++) {
      mean[j] = s1[j] / N;
      var[j] = std::max(0.0, s2[j] / N - mean[j] * mean[j]);
    }
  };
  for (int l = 0; l < m.cfg.n_layers; l++) {
    st.o_mean.emplace_back(), st.o_var.emplace_back(), st.down_mean.emplace_back(), st.down_var.emplace_back();
    finish(total.o1[size_t(l)], total.o2[size_t(l)], st.o_mean.back(), st.o_var.back());
    finish(total.d1[size_t(l)], total.d2[size_t(l)], st.down_mean.back(), st.down_var.back());
  }
  return st;
}

// ---------------------------------------------------------------------------------------------------
// Plan: WIFV scores, standardized per module type over all layers, removed by ascending score to the budget.

namespace {

// S_j = var_j · ‖W[:, j]‖² for W (rows, cols).
std::vector<double> wifv(const Linear& lin, const std::vector<double>& var) {
  std::vector<float> W = dense_weight(lin);
  const int64_t rows = lin.out(), cols = lin.in();
  check(int64_t(var.size()) == cols, "FLAP: statistics of width {} for a Linear with {} inputs", var.size(), cols);
  std::vector<double> col2(size_t(cols), 0.0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) col2[size_t(j)] += double(W[size_t(r * cols + j)]) * W[size_t(r * cols + j)];
  for (int64_t j = 0; j < cols; j++) col2[size_t(j)] *= var[size_t(j)];
  return col2;
}

// (S − mean) / std over all values of all layers.
void standardize(std::vector<std::vector<double>>& s) {
  double sum = 0, sq = 0, n = 0;
  for (const auto& v : s)
    for (double x : v) sum += x, sq += x * x, n++;
  const double mean = sum / n, sd = std::sqrt(std::max(sq / n - mean * mean, 0.0));
  for (auto& v : s)
    for (double& x : v) x = sd > 0 ? (x - mean) / sd : 0.0;
}

void standardize_one(std::vector<double>& v) {
  std::vector<std::vector<double>> one{std::move(v)};
  standardize(one);
  v = std::move(one[0]);
}

struct Unit {
  double score;
  int layer, index;
  bool attn;
  int64_t cost;
};

}  // namespace

FlapScope parse_flap_scope(const std::string& s) {
  if (s == "layer") return FlapScope::Layer;
  if (s == "global") return FlapScope::Global;
  fail("FLAP: standardization scope '{}': want layer or global", s);
}

FlapPlan flap_plan(const Model& m, const FlapStats& st, double sparsity, FlapScope scope) {
  check_sparsity(sparsity, "FLAP");
  const ModelConfig& c = m.cfg;
  const int nL = c.n_layers, hs = c.head_dim;
  check(int(st.o_var.size()) == nL && int(st.down_var.size()) == nL, "FLAP: statistics for {} layers, model has {}",
        st.o_var.size(), nL);
  std::vector<std::vector<double>> attn(static_cast<size_t>(nL)), mlp(static_cast<size_t>(nL));
  for (int l = 0; l < nL; l++) {
    attn[size_t(l)] = wifv(m.blocks[size_t(l)].at(LinearKind::O), st.o_var[size_t(l)]);
    mlp[size_t(l)] = wifv(m.blocks[size_t(l)].at(LinearKind::Down), st.down_var[size_t(l)]);
  }
  if (scope == FlapScope::Global) {
    standardize(attn);
    standardize(mlp);
  } else {
    for (int l = 0; l < nL; l++) standardize_one(attn[size_t(l)]), standardize_one(mlp[size_t(l)]);
  }
  FlapPlan p;
  std::vector<Unit> units;
  std::vector<int> groups_left(static_cast<size_t>(nL)), channels_left(static_cast<size_t>(nL));
  for (int l = 0; l < nL; l++) {
    const Block& b = m.blocks[size_t(l)];
    const int H = c.heads(l), KV = c.kv_heads(l), F = c.ffn(l), g = H / KV;
    for (const auto& lin : b.lin) p.prunable_params += lin.out() * lin.in();
    // One KV group: g query heads (q rows, o columns) + one k and one v head (+ their q/k/v biases).
    const int64_t gcost = int64_t(hs) * (c.hidden * (2 * g + 2) + (b.at(LinearKind::Q).bias.empty() ? 0 : g + 2));
    for (int k = 0; k < KV; k++) {
      double s = 0;
      for (int j = k * g * hs; j < (k + 1) * g * hs; j++) s += attn[size_t(l)][size_t(j)];
      units.push_back({s / (g * hs), l, k, true, gcost});
    }
    for (int j = 0; j < F; j++) units.push_back({mlp[size_t(l)][size_t(j)], l, j, false, 3 * int64_t(c.hidden)});
    groups_left[size_t(l)] = KV, channels_left[size_t(l)] = F;
  }
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) { return a.score < b.score; });
  p.target_params = int64_t(std::llround(sparsity * double(p.prunable_params)));
  std::vector<std::vector<char>> drop_g(static_cast<size_t>(nL)), drop_c(static_cast<size_t>(nL));
  for (int l = 0; l < nL; l++) drop_g[size_t(l)].assign(size_t(c.kv_heads(l)), 0), drop_c[size_t(l)].assign(size_t(c.ffn(l)), 0);
  for (const Unit& u : units) {
    if (2 * (p.removed_params + u.cost) > 2 * p.target_params + u.cost) continue;  // overshoots by > cost/2
    int& left = u.attn ? groups_left[size_t(u.layer)] : channels_left[size_t(u.layer)];
    if (left <= 1) continue;
    left--;
    (u.attn ? drop_g : drop_c)[size_t(u.layer)][size_t(u.index)] = 1;
    p.removed_params += u.cost;
  }
  for (int l = 0; l < nL; l++) {
    p.keep_groups.emplace_back(), p.keep_channels.emplace_back();
    for (int k = 0; k < c.kv_heads(l); k++)
      if (!drop_g[size_t(l)][size_t(k)]) p.keep_groups.back().push_back(k);
    for (int j = 0; j < c.ffn(l); j++)
      if (!drop_c[size_t(l)][size_t(j)]) p.keep_channels.back().push_back(j);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Apply: keep rows of q/k/v/gate/up and columns of o/down; bias compensation on o/down.

namespace {

// Columns `keep` of `lin`; with compensation, bias += Σ_{j ∉ keep} mean_j · W[:, j].
Linear keep_inputs(const Linear& lin, const std::vector<int>& keep, const std::vector<double>& mean, bool compensate) {
  const int64_t rows = lin.out(), cols = lin.in();
  std::vector<float> W = dense_weight(lin);
  std::vector<float> bias = lin.bias;
  if (compensate && int64_t(keep.size()) < cols) {
    std::vector<char> kept(size_t(cols), 0);
    for (int j : keep) kept[size_t(j)] = 1;
    std::vector<double> b(size_t(rows), 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < cols; j++)
        if (!kept[size_t(j)]) b[size_t(r)] += mean[size_t(j)] * W[size_t(r * cols + j)];
    if (bias.empty()) bias.assign(size_t(rows), 0.0f);
    for (int64_t r = 0; r < rows; r++) bias[size_t(r)] += float(b[size_t(r)]);
  }
  return make_dense_linear(rows, int64_t(keep.size()), take_cols(W, rows, cols, keep), std::move(bias));
}

Linear keep_outputs(const Linear& lin, const std::vector<int>& keep) {
  std::vector<float> bias;
  if (!lin.bias.empty())
    for (int r : keep) bias.push_back(lin.bias[size_t(r)]);
  return make_dense_linear(int64_t(keep.size()), lin.in(), take_rows(dense_weight(lin), lin.in(), keep),
                           std::move(bias));
}

std::vector<int> expand(const std::vector<int>& units, int width) {  // unit k → rows k·width .. +width−1
  std::vector<int> rows;
  for (int k : units)
    for (int i = 0; i < width; i++) rows.push_back(k * width + i);
  return rows;
}

void check_sorted_unique(const std::vector<int>& v, int n, const char* what, int l) {
  for (size_t i = 0; i < v.size(); i++)
    check(v[i] >= 0 && v[i] < n && (i == 0 || v[i] > v[i - 1]), "FLAP: layer {}: kept {} must be ascending indices in 0..{}",
          l, what, n - 1);
}

}  // namespace

void flap_apply(Model& m, const FlapStats& st, const FlapPlan& p, bool bias_compensation) {
  ModelConfig& c = m.cfg;
  const int nL = c.n_layers, hs = c.head_dim;
  check(int(p.keep_groups.size()) == nL && int(p.keep_channels.size()) == nL, "FLAP: plan for {} layers, model has {}",
        p.keep_groups.size(), nL);
  for (int l = 0; l < nL; l++) {
    check(!p.keep_groups[size_t(l)].empty(), "FLAP: layer {} would keep no attention head (keep ≥ 1 KV group)", l);
    check(!p.keep_channels[size_t(l)].empty(), "FLAP: layer {} would keep no MLP channel (width must stay > 0)", l);
    check_sorted_unique(p.keep_groups[size_t(l)], c.kv_heads(l), "KV groups", l);
    check_sorted_unique(p.keep_channels[size_t(l)], c.ffn(l), "MLP channels", l);
  }
  for (int l = 0; l < nL; l++) {
    Block& b = m.blocks[size_t(l)];
    const int g = c.heads(l) / c.kv_heads(l);
    const std::vector<int>& kg = p.keep_groups[size_t(l)];
    std::vector<int> qheads;  // query heads of the kept groups, in order
    for (int k : kg)
      for (int i = 0; i < g; i++) qheads.push_back(k * g + i);
    const std::vector<int> qrows = expand(qheads, hs), kvrows = expand(kg, hs);
    b.at(LinearKind::Q) = keep_outputs(b.at(LinearKind::Q), qrows);
    b.at(LinearKind::K) = keep_outputs(b.at(LinearKind::K), kvrows);
    b.at(LinearKind::V) = keep_outputs(b.at(LinearKind::V), kvrows);
    b.at(LinearKind::O) = keep_inputs(b.at(LinearKind::O), qrows, st.o_mean[size_t(l)], bias_compensation);
    const std::vector<int>& kc = p.keep_channels[size_t(l)];
    b.at(LinearKind::Gate) = keep_outputs(b.at(LinearKind::Gate), kc);
    b.at(LinearKind::Up) = keep_outputs(b.at(LinearKind::Up), kc);
    b.at(LinearKind::Down) = keep_inputs(b.at(LinearKind::Down), kc, st.down_mean[size_t(l)], bias_compensation);
  }
  sync_layer_widths(m);
}

FlapPlan flap_prune(Model& m, const Samples& samples, double sparsity, bool bias_compensation, FlapScope scope,
                    bool progress) {
  check_sparsity(sparsity, "FLAP");
  FlapStats st = flap_statistics(m, samples, progress);
  FlapPlan p = flap_plan(m, st, sparsity, scope);
  flap_apply(m, st, p, bias_compensation);
  return p;
}

}  // namespace lmp

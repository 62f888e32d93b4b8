#include "prune/loraprune.h"

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "prune/structured_common.h"

namespace lmp {

using train::TLinear;

void lora_weight_importance(float* imp, const float* W, const float* A, const float* B, const float* dA,
                            const float* dB, int O, int I, int r, double s) {
#pragma omp parallel for if (int64_t(O) * I * r > 1 << 18)
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      double ba = 0, g = 0;
      for (int j = 0; j < r; j++) {
        const double b = B[size_t(o) * r + j], a = A[size_t(j) * I + i];
        ba += b * a;
        g += double(dB[size_t(o) * r + j]) * a + b * dA[size_t(j) * I + i];
      }
      imp[size_t(o) * I + i] = float(std::abs((W[size_t(o) * I + i] + s * ba) * s * g));
    }
}

namespace {

// Sum of imp (O, I) over rows [r0, r1) / columns [c0, c1).
double rows_sum(const std::vector<float>& imp, int I, int r0, int r1) {
  double s = 0;
  for (size_t k = size_t(r0) * I; k < size_t(r1) * I; k++) s += imp[k];
  return s;
}
double cols_sum(const std::vector<float>& imp, int O, int I, int c0, int c1) {
  double s = 0;
  for (int o = 0; o < O; o++)
    for (int c = c0; c < c1; c++) s += imp[size_t(o) * I + c];
  return s;
}

struct Shape {
  int KV, F, g, hs, C;
  int64_t gcost, ccost;
};
Shape shape_of(const train::TrainModel<float>& tm, int l) {
  const auto& c = tm.cfg;
  Shape s{c.kv_heads(l), c.ffn(l), c.heads(l) / c.kv_heads(l), c.head_dim, c.hidden, 0, 0};
  s.gcost = int64_t(s.hs) * s.C * (2 * s.g + 2);
  s.ccost = 3 * int64_t(s.C);
  return s;
}

}  // namespace

LoraPruner::LoraPruner(train::TrainModel<float>& tm, const LoraPruneOptions& o) : tm_(tm), o_(o) {
  check_sparsity(o.sparsity, "LoRAPrune");
  check(o.prune_steps > 0 && o.every > 0, "LoRAPrune: --prune-steps and --prune-every must be positive");
  check(o.ema >= 0 && o.ema < 1, "LoRAPrune: --prune-ema {} must be in [0, 1)", o.ema);
  for (int l = 0; l < tm.n_layers(); l++) {
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const TLinear<float>& L = tm.linear(l, k);
      check(L.A >= 0 && L.W >= 0 && L.bias < 0, "LoRAPrune: {} needs a LoRA adapter on a float base without bias "
            "(train with --targets '.*', no --qlora)", L.name);
      prunable_ += int64_t(L.O) * L.I;
    }
    const Shape s = shape_of(tm, l);
    avg_.emplace_back(size_t(s.KV + s.F), 0.0);
    masked_.emplace_back(size_t(s.KV + s.F), 0);
  }
}

std::vector<std::vector<double>> LoraPruner::group_importance() const {
  std::vector<std::vector<double>> out;
  for (int l = 0; l < tm_.n_layers(); l++) {
    const Shape sh = shape_of(tm_, l);
    std::vector<std::vector<float>> imp(kLinearsPerBlock);
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const TLinear<float>& L = tm_.linear(l, k);
      const auto& A = tm_.params[size_t(L.A)];
      const auto& B = tm_.params[size_t(L.B)];
      imp[size_t(k)].resize(size_t(L.O) * L.I);
      lora_weight_importance(imp[size_t(k)].data(), tm_.params[size_t(L.W)].w.data(), A.w.data(), B.w.data(),
                             A.g.data(), B.g.data(), L.O, L.I, L.rank, L.lora_scale);
    }
    auto lin = [&](LinearKind k) -> const TLinear<float>& { return tm_.linear(l, int(k)); };
    std::vector<double> v(size_t(sh.KV + sh.F));
    const int qw = sh.g * sh.hs;  // q rows / o columns of one KV group
    for (int kg = 0; kg < sh.KV; kg++) {
      double s = rows_sum(imp[0], sh.C, kg * qw, (kg + 1) * qw) + rows_sum(imp[1], sh.C, kg * sh.hs, (kg + 1) * sh.hs) +
                 rows_sum(imp[2], sh.C, kg * sh.hs, (kg + 1) * sh.hs) +
                 cols_sum(imp[3], lin(LinearKind::O).O, lin(LinearKind::O).I, kg * qw, (kg + 1) * qw);
      v[size_t(kg)] = s / double(sh.gcost);
    }
    const TLinear<float>& D = lin(LinearKind::Down);
    for (int j = 0; j < sh.F; j++) {
      double s = rows_sum(imp[4], sh.C, j, j + 1) + rows_sum(imp[5], sh.C, j, j + 1) + cols_sum(imp[6], D.O, D.I, j, j + 1);
      v[size_t(sh.KV + j)] = s / double(sh.ccost);
    }
    out.push_back(std::move(v));
  }
  return out;
}

void LoraPruner::after_backward(int step) {
  if (step >= o_.prune_steps) return;  // recovery: the plan is fixed
  auto gi = group_importance();
  const double lam = have_avg_ ? o_.ema : 0.0;
  for (size_t l = 0; l < gi.size(); l++)
    for (size_t u = 0; u < gi[l].size(); u++) avg_[l][u] = lam * avg_[l][u] + (1 - lam) * gi[l][u];
  have_avg_ = true;
}

void LoraPruner::after_step(int step) {
  if (step < o_.prune_steps && ((step + 1) % o_.every == 0 || step + 1 == o_.prune_steps)) {
    const double frac = std::min(1.0, double(step + 1) / o_.prune_steps);
    prune_to(int64_t(std::llround(o_.sparsity * frac * double(prunable_))));
    if (o_.verbose)
      std::fprintf(stderr, "loraprune step %d: %lld of %lld projection parameters masked (%.1f%%)\n", step + 1,
                   (long long)removed_, (long long)prunable_, 100.0 * double(removed_) / double(prunable_));
  }
  apply_masks();
}

void LoraPruner::prune_to(int64_t target) {
  struct Unit {
    double score;
    int l, u;
    int64_t cost;
  };
  std::vector<Unit> units;
  std::vector<int> groups_left, channels_left;
  for (int l = 0; l < tm_.n_layers(); l++) {
    const Shape sh = shape_of(tm_, l);
    int gl = 0, cl = 0;
    for (int u = 0; u < sh.KV + sh.F; u++) {
      if (masked_[size_t(l)][size_t(u)]) continue;
      (u < sh.KV ? gl : cl)++;
      units.push_back({avg_[size_t(l)][size_t(u)], l, u, u < sh.KV ? sh.gcost : sh.ccost});
    }
    groups_left.push_back(gl), channels_left.push_back(cl);
  }
  std::stable_sort(units.begin(), units.end(), [](const Unit& a, const Unit& b) { return a.score < b.score; });
  for (const Unit& u : units) {
    if (removed_ >= target) break;
    if (2 * (removed_ + u.cost) > 2 * target + u.cost) continue;  // overshoots by more than half its size
    const bool attn = u.u < shape_of(tm_, u.l).KV;
    int& left = attn ? groups_left[size_t(u.l)] : channels_left[size_t(u.l)];
    if (left <= 1) continue;
    left--;
    masked_[size_t(u.l)][size_t(u.u)] = 1;
    removed_ += u.cost;
  }
}

void LoraPruner::apply_masks() {
  auto zero_rows = [&](const TLinear<float>& L, int r0, int r1) {  // W rows and B rows: output rows are 0
    auto& W = tm_.params[size_t(L.W)].w;
    auto& B = tm_.params[size_t(L.B)].w;
    std::fill(W.begin() + ptrdiff_t(r0) * L.I, W.begin() + ptrdiff_t(r1) * L.I, 0.0f);
    std::fill(B.begin() + ptrdiff_t(r0) * L.rank, B.begin() + ptrdiff_t(r1) * L.rank, 0.0f);
  };
  auto zero_cols = [&](const TLinear<float>& L, int c0, int c1) {  // W columns and A columns: inputs unused
    auto& W = tm_.params[size_t(L.W)].w;
    auto& A = tm_.params[size_t(L.A)].w;
    for (int o = 0; o < L.O; o++) std::fill(W.begin() + ptrdiff_t(o) * L.I + c0, W.begin() + ptrdiff_t(o) * L.I + c1, 0.0f);
    for (int j = 0; j < L.rank; j++) std::fill(A.begin() + ptrdiff_t(j) * L.I + c0, A.begin() + ptrdiff_t(j) * L.I + c1, 0.0f);
  };
  for (int l = 0; l < tm_.n_layers(); l++) {
    const Shape sh = shape_of(tm_, l);
    auto lin = [&](LinearKind k) -> const TLinear<float>& { return tm_.linear(l, int(k)); };
    const int qw = sh.g * sh.hs;
    for (int u = 0; u < sh.KV + sh.F; u++) {
      if (!masked_[size_t(l)][size_t(u)]) continue;
      if (u < sh.KV) {
        zero_rows(lin(LinearKind::Q), u * qw, (u + 1) * qw);
        zero_rows(lin(LinearKind::K), u * sh.hs, (u + 1) * sh.hs);
        zero_rows(lin(LinearKind::V), u * sh.hs, (u + 1) * sh.hs);
        zero_cols(lin(LinearKind::O), u * qw, (u + 1) * qw);
      } else {
        const int j = u - sh.KV;
        zero_rows(lin(LinearKind::Gate), j, j + 1);
        zero_rows(lin(LinearKind::Up), j, j + 1);
        zero_cols(lin(LinearKind::Down), j, j + 1);
      }
    }
  }
}

FlapPlan LoraPruner::plan() const {
  FlapPlan p;
  p.prunable_params = prunable_;
  p.target_params = int64_t(std::llround(o_.sparsity * double(prunable_)));
  p.removed_params = removed_;
  for (int l = 0; l < tm_.n_layers(); l++) {
    const Shape sh = shape_of(tm_, l);
    p.keep_groups.emplace_back(), p.keep_channels.emplace_back();
    for (int u = 0; u < sh.KV + sh.F; u++)
      if (!masked_[size_t(l)][size_t(u)]) (u < sh.KV ? p.keep_groups.back() : p.keep_channels.back()).push_back(u < sh.KV ? u : u - sh.KV);
  }
  return p;
}

std::unique_ptr<Model> LoraPruner::finish(const Model& src) const {
  auto m = tm_.to_model(src);
  FlapStats zero;  // no bias compensation: the removed rows/columns are exactly zero already
  for (int l = 0; l < m->cfg.n_layers; l++) {
    zero.o_mean.emplace_back(size_t(m->cfg.heads(l)) * m->cfg.head_dim, 0.0);
    zero.down_mean.emplace_back(size_t(m->cfg.ffn(l)), 0.0);
  }
  zero.o_var = zero.o_mean, zero.down_var = zero.down_mean;
  flap_apply(*m, zero, plan(), false);
  return m;
}

}  // namespace lmp

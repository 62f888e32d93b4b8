#include "quant/os_plus.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/dense.h"
#include "kernels/shifted.h"
#include "kernels/w8a8.h"
#include "quant/quant_args.h"
#include "quant/smoothquant.h"
#include "quant/w8a8.h"

namespace lmp {

namespace {

struct Ranges {
  std::vector<float> lo, hi;
};
Ranges channel_ranges(const float* X, int64_t n, int64_t C) {
  Ranges r{std::vector<float>(size_t(C), INFINITY), std::vector<float>(size_t(C), -INFINITY)};
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 0; c < C; c++)
      r.lo[size_t(c)] = std::min(r.lo[size_t(c)], X[t * C + c]), r.hi[size_t(c)] = std::max(r.hi[size_t(c)], X[t * C + c]);
  return r;
}

// The consumer of a transformed input: W̃ = W diag(s) stored (W8A8 or f32), shift z̃ = z / s, bias b + Ŵ z̃.
Linear transformed(const Linear& l, const OsPlusParams& p, bool quantize, int group, bool scaled_already) {
  const int64_t R = l.out(), C = l.in();
  std::vector<float> W = l.w->dense(), zt(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) zt[size_t(c)] = p.z[size_t(c)] / p.s[size_t(c)];
  if (!scaled_already)
    for (int64_t r = 0; r < R; r++)
      for (int64_t c = 0; c < C; c++) W[size_t(r * C + c)] *= p.s[size_t(c)];
  WeightPtr inner = quantize ? WeightPtr(W8A8Matrix::quantize(R, C, W.data(), group))
                             : WeightPtr(std::make_unique<DenseF32>(R, C, W));
  const std::vector<float> Wq = inner->dense();
  Linear out;
  out.bias = l.bias.empty() ? std::vector<float>(size_t(R), 0.0f) : l.bias;
  for (int64_t r = 0; r < R; r++) {
    double acc = 0;
    for (int64_t c = 0; c < C; c++) acc += double(Wq[size_t(r * C + c)]) * zt[size_t(c)];
    out.bias[size_t(r)] += float(acc);
  }
  out.w = std::make_unique<ShiftedMatrix>(std::move(inner), std::move(zt));
  return out;
}

}  // namespace

double os_plus_error(const float* X, int64_t n, int64_t C, const OsPlusParams& p, const std::vector<const Linear*>& lins,
                     int group) {
  std::vector<float> Xs(size_t(n * C));  // the input as the folded norm produces it: x / s
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 0; c < C; c++) Xs[size_t(t * C + c)] = X[t * C + c] / p.s[size_t(c)];
  double err = 0;
  for (const Linear* l : lins) {
    const int64_t R = l->out();
    Linear q = transformed(*l, p, true, group, false);
    std::vector<float> Y(size_t(n * R)), Yq(size_t(n * R));
    l->forward(X, n, Y.data());
    q.forward(Xs.data(), n, Yq.data());
    for (size_t i = 0; i < Y.size(); i++) err += (double(Yq[i]) - Y[i]) * (double(Yq[i]) - Y[i]);
  }
  return err;
}

OsPlusParams os_plus_search(const float* X, int64_t n, int64_t C, const std::vector<const Linear*>& lins, int grid,
                            int group) {
  const Ranges rg = channel_ranges(X, n, C);
  OsPlusParams p;
  p.z.resize(size_t(C)), p.s.assign(size_t(C), 1.0f);
  std::vector<float> r(static_cast<size_t>(C));
  float rmax = 0;
  for (int64_t c = 0; c < C; c++) {
    p.z[size_t(c)] = 0.5f * (rg.lo[size_t(c)] + rg.hi[size_t(c)]);
    r[size_t(c)] = 0.5f * (rg.hi[size_t(c)] - rg.lo[size_t(c)]);
    rmax = std::max(rmax, r[size_t(c)]);
  }
  double best = INFINITY;
  OsPlusParams cand = p;
  for (int k = grid; k >= 1; k--) {  // t = rmax · k / grid; k = grid: shift only (every s = 1)
    const double t = double(rmax) * k / grid;
    for (int64_t c = 0; c < C; c++) cand.s[size_t(c)] = t > 0 ? float(std::max(1.0, r[size_t(c)] / t)) : 1.0f;
    cand.t = t;
    const double e = os_plus_error(X, n, C, cand, lins, group);
    if (e < best) best = e, p = cand;
  }
  return p;
}

void os_plus_apply_site(Block& b, bool attn, const OsPlusParams& p, bool quantize, int group) {
  fold_smoothing(b, attn ? SmoothSite::Attn : SmoothSite::Mlp, p.s);
  using K = LinearKind;
  const std::vector<K> kinds = attn ? std::vector<K>{K::Q, K::K, K::V} : std::vector<K>{K::Gate, K::Up};
  for (K k : kinds) b.at(k) = transformed(b.at(k), p, quantize, group, true);
}

namespace {

class OsPlusModifier final : public BlockModifier {
 public:
  explicit OsPlusModifier(const nlohmann::json& st) {
    group_ = w8a8_group_from_stage(st, "os_plus");
    nsamples_ = int(stage_int(st, "nsamples", 8, 1, 1 << 20, "os_plus"));
    grid_ = int(stage_int(st, "grid", 20, 1, 1000, "os_plus"));
    quantize_ = st.value("quantize", true);
  }
  std::string name() const override { return "os_plus"; }
  StatsRequest stats_request() const override { return {false, false}; }
  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    const int64_t C = ctx.model.cfg.hidden;
    const int ns = std::min<int>(nsamples_, int(ctx.inputs.size()));
    std::vector<float> xa, xm, out(ctx.inputs.empty() ? 0 : ctx.inputs[0].size());
    for (int s = 0; s < ns; s++)
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k == LinearKind::Q) xa.insert(xa.end(), X, X + n * C);
        if (k == LinearKind::Gate) xm.insert(xm.end(), X, X + n * C);
      });
    check(!xa.empty() && !xm.empty(), "os_plus: block {} produced no calibration inputs", ctx.layer);
    using K = LinearKind;
    const OsPlusParams pa = os_plus_search(xa.data(), int64_t(xa.size()) / C, C, {&b.at(K::Q), &b.at(K::K), &b.at(K::V)},
                                           grid_, group_);
    const OsPlusParams pm = os_plus_search(xm.data(), int64_t(xm.size()) / C, C, {&b.at(K::Gate), &b.at(K::Up)}, grid_,
                                           group_);
    os_plus_apply_site(b, true, pa, quantize_, group_);
    os_plus_apply_site(b, false, pm, quantize_, group_);
    if (quantize_)
      for (K k : {K::O, K::Down}) b.at(k).w = W8A8Matrix::quantize(b.at(k).out(), b.at(k).in(), b.at(k).w->dense().data(), group_);
    std::fprintf(stderr, "os_plus: block %d threshold attn %.3g, mlp %.3g\n", ctx.layer, pa.t, pm.t);
  }

 private:
  int group_ = 0, nsamples_ = 8, grid_ = 20;
  bool quantize_ = true;
};

}  // namespace

std::unique_ptr<BlockModifier> make_os_plus_modifier(const nlohmann::json& stage) {
  return std::make_unique<OsPlusModifier>(stage);
}

}  // namespace lmp

// AWQ: activation-aware scale search, weight clipping search, then RTN (see awq.h for the math).
#include "quant/awq.h"

#include <algorithm>
#include <array>
#include <cblas.h>
#include <cmath>
#include <cstdio>
#include <limits>
#include <set>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/dense.h"
#include "kernels/qint.h"
#include "quant/quant_args.h"

namespace lmp {

const std::vector<AwqScaleGroup>& awq_llama_groups() {
  using K = LinearKind;
  static const std::vector<AwqScaleGroup> t = {
      {"input_layernorm -> q,k,v", AwqPrev::AttnNorm, K::Q, {K::Q, K::K, K::V}, AwqInspect::Block},
      {"v_proj -> o_proj", AwqPrev::Linear, K::V, {K::O}, AwqInspect::Block},
      {"post_attention_layernorm -> gate,up", AwqPrev::FfnNorm, K::Q, {K::Gate, K::Up}, AwqInspect::Mlp},
      {"up_proj -> down_proj", AwqPrev::Linear, K::Up, {K::Down}, AwqInspect::Mlp},
  };
  return t;
}

namespace {

bool is_dense(const WeightMatrix& w) { return w.format() == "f32" || w.format() == "f16"; }

int calib_samples(const BlockContext& ctx, const AwqOptions& o) {
  return int(std::min<size_t>(size_t(o.samples), ctx.inputs.size()));
}

// ---------------------------------------------------------------------------------------------------
// Scale search.

// s_j = max(mean|x_j|, 1e-4)^α, then s ← s / sqrt(max s · min s) (centres the scales around 1 in log space).
std::vector<float> scales_for_alpha(const std::vector<double>& x_mean_abs, double alpha) {
  std::vector<float> s(x_mean_abs.size());
  double lo = std::numeric_limits<double>::infinity(), hi = 0;
  std::vector<double> sd(s.size());
  for (size_t j = 0; j < s.size(); j++) {
    sd[j] = std::pow(std::max(x_mean_abs[j], 1e-4), alpha);
    lo = std::min(lo, sd[j]);
    hi = std::max(hi, sd[j]);
  }
  const double norm = std::sqrt(lo * hi);
  for (size_t j = 0; j < s.size(); j++) s[j] = float(sd[j] / norm);
  return s;
}

// Q(W·diag(s))·diag(s)⁻¹ as dense f32: what the Linear computes with once s⁻¹ is folded into its input.
WeightPtr fake_quant_scaled(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<float>& s,
                            const QuantGrid& grid) {
  std::vector<float> Ws(W);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) Ws[size_t(r * cols + c)] *= s[size_t(c)];
  std::vector<float> Q = QIntMatrix::quantize(rows, cols, Ws.data(), grid)->dense();
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) Q[size_t(r * cols + c)] /= s[size_t(c)];
  return std::make_unique<DenseF32>(rows, cols, std::move(Q));
}

// Block output error probe: runs the whole block on the first ref.size() samples.
class BlockProbe {
 public:
  BlockProbe(BlockContext& ctx, int nsamples) : ctx_(ctx), ref_(size_t(nsamples)) {
    for (size_t s = 0; s < ref_.size(); s++) {
      ref_[s].resize(ctx.inputs[s].size());
      ctx.run_block(int(s), ref_[s].data());
    }
  }
  // Mean squared difference of the block's current outputs and the float ones.
  double error() const {
    double e = 0;
    size_t n = 0;
    std::vector<float> out;
    for (size_t s = 0; s < ref_.size(); s++) {
      out.resize(ref_[s].size());
      ctx_.run_block(int(s), out.data());
      for (size_t i = 0; i < out.size(); i++) e += (double(out[i]) - ref_[s][i]) * (double(out[i]) - ref_[s][i]);
      n += out.size();
    }
    return e / double(std::max<size_t>(n, 1));
  }

 private:
  BlockContext& ctx_;
  std::vector<std::vector<float>> ref_;
};

// MLP output error probe: x += down(silu(gate(h)) · up(h)) with h the captured MLP input (as Forward::block);
// since x before the MLP does not change with gate/up/down, this equals the block output error.
class MlpProbe {
 public:
  MlpProbe(BlockContext& ctx, int nsamples) : b_(ctx.model.blocks[size_t(ctx.layer)]) {
    std::vector<float> out(ctx.inputs[0].size());
    h_.resize(size_t(nsamples));
    for (int s = 0; s < nsamples; s++)
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k == LinearKind::Gate) h_[size_t(s)].assign(X, X + n * b_.at(k).in());
      });
    for (const auto& h : h_) ref_.push_back(mlp(h));
  }
  double error() const {
    double e = 0;
    size_t n = 0;
    for (size_t s = 0; s < h_.size(); s++) {
      std::vector<float> y = mlp(h_[s]);
      for (size_t i = 0; i < y.size(); i++) e += (double(y[i]) - ref_[s][i]) * (double(y[i]) - ref_[s][i]);
      n += y.size();
    }
    return e / double(std::max<size_t>(n, 1));
  }

 private:
  std::vector<float> mlp(const std::vector<float>& h) const {
    const Linear &gate = b_.at(LinearKind::Gate), &up = b_.at(LinearKind::Up), &down = b_.at(LinearKind::Down);
    const int64_t n = int64_t(h.size()) / gate.in();
    std::vector<float> g(size_t(n * gate.out())), u(g.size()), y(size_t(n * down.out()));
    gate.forward(h.data(), n, g.data());
    up.forward(h.data(), n, u.data());
    for (size_t i = 0; i < g.size(); i++) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];  // silu(g) · u
    down.forward(g.data(), n, y.data());
    return y;
  }
  const Block& b_;
  std::vector<std::vector<float>> h_, ref_;  // per sample: (L, C) MLP input, (L, C) float MLP output
};

// Swaps the group's Linears for fake-quantized ones while alive; puts the originals back on destruction.
class LinearSwap {
 public:
  LinearSwap(Block& b, const std::vector<LinearKind>& kinds) : b_(b), kinds_(kinds) {
    for (LinearKind k : kinds) orig_.push_back(std::move(b.at(k).w));
  }
  ~LinearSwap() {
    for (size_t i = 0; i < kinds_.size(); i++) b_.at(kinds_[i]).w = std::move(orig_[i]);
  }
  const WeightMatrix& original(size_t i) const { return *orig_[i]; }
  void set(size_t i, WeightPtr w) { b_.at(kinds_[i]).w = std::move(w); }

 private:
  Block& b_;
  std::vector<LinearKind> kinds_;
  std::vector<WeightPtr> orig_;
};

// Why a group cannot be scaled on this block ("" when it can). Throws when the previous Linear is compressed.
std::string inapplicable_reason(const Block& b, const AwqScaleGroup& g, int layer) {
  if (g.prev != AwqPrev::Linear) return "";
  const Linear& p = b.at(g.prev_linear);
  const Linear& first = b.at(g.layers[0]);
  const std::string pname = kLinearNames[size_t(g.prev_linear)], fname = kLinearNames[size_t(g.layers[0])];
  if (p.out() != first.in())
    return fmt::format("{}.out_features {} != {}.in_features {} (grouped-query attention: one value channel "
                       "feeds several heads)", pname, p.out(), fname, first.in());
  check(is_dense(*p.w), "awq: {}: cannot fold scales into {}, it is already compressed ({}); run awq before "
        "other stages that compress it, or ignore {}", linear_name(layer, g.prev_linear), pname, p.w->format(), fname);
  return "";
}

void check_finite(const std::vector<float>& W, int64_t cols, const std::string& what) {
  for (size_t i = 0; i < W.size(); i++)
    check(std::isfinite(W[i]), "{}: weights contain NaN/Inf (row {}, column {})", what, int64_t(i) / cols,
          int64_t(i) % cols);
}

}  // namespace

AwqScaleResult awq_search_scale(BlockContext& ctx, const AwqScaleGroup& g, const AwqOptions& o,
                                const std::function<double()>& error) {
  Block& b = ctx.model.blocks[size_t(ctx.layer)];
  AwqScaleResult res;
  res.group = g.name;
  res.skipped_because = inapplicable_reason(b, g, ctx.layer);
  if (!res.skipped_because.empty()) return res;
  res.applicable = true;
  const std::vector<double> x = ctx.stats.of(g.layers[0]).mean_abs();  // s_X
  LinearSwap swap(b, g.layers);
  std::vector<std::vector<float>> W;
  for (size_t i = 0; i < g.layers.size(); i++) {
    W.push_back(swap.original(i).dense());
    check_finite(W.back(), swap.original(i).cols(), linear_name(ctx.layer, g.layers[i]));
  }
  // α = 0 first: it is RTN, the baseline the search must beat.
  std::vector<double> alphas;
  for (int i = 0; i < o.n_grid; i++) alphas.push_back(o.n_grid == 1 ? 0.0 : double(i) / double(o.n_grid - 1));
  if (o.fixed_alpha >= 0) alphas = {o.fixed_alpha};
  res.err_best = std::numeric_limits<double>::infinity();
  for (double alpha : alphas) {
    std::vector<float> s = scales_for_alpha(x, alpha);
    for (size_t i = 0; i < g.layers.size(); i++) {
      const WeightMatrix& w = swap.original(i);
      swap.set(i, fake_quant_scaled(W[i], w.rows(), w.cols(), s, o.grid));
    }
    double err = error();
    if (alpha == 0) res.err_rtn = err;
    if (err < res.err_best) res.err_best = err, res.alpha = alpha, res.scales = std::move(s);
  }
  check(!res.scales.empty(), "awq: block {} output is not finite (NaN/Inf in weights or activations)", ctx.layer);
  return res;
}

void awq_apply_scale(Model& m, int layer, const AwqScaleGroup& g, const std::vector<float>& s) {
  Block& b = m.blocks[size_t(layer)];
  // Previous op: x ← x · diag(s)⁻¹.
  if (g.prev == AwqPrev::AttnNorm || g.prev == AwqPrev::FfnNorm) {
    std::vector<float>& nw = g.prev == AwqPrev::AttnNorm ? b.attn_norm : b.ffn_norm;
    for (size_t j = 0; j < s.size(); j++) nw[j] /= s[j];
  } else {
    Linear& p = b.at(g.prev_linear);
    std::vector<float> Wp = p.w->dense();
    const int64_t cols = p.in();
    for (int64_t r = 0; r < p.out(); r++) {
      for (int64_t c = 0; c < cols; c++) Wp[size_t(r * cols + c)] /= s[size_t(r)];
      if (!p.bias.empty()) p.bias[size_t(r)] /= s[size_t(r)];
    }
    if (p.w->format() == "f16")
      p.w = DenseF16::from_f32(p.out(), cols, Wp.data());
    else
      p.w = std::make_unique<DenseF32>(p.out(), cols, std::move(Wp));
  }
  // The group's Linears: W ← W · diag(s).
  for (LinearKind k : g.layers) {
    Linear& lin = b.at(k);
    std::vector<float> W = lin.w->dense();
    for (int64_t r = 0; r < lin.out(); r++)
      for (int64_t c = 0; c < lin.in(); c++) W[size_t(r * lin.in() + c)] *= s[size_t(c)];
    lin.w = std::make_unique<DenseF32>(lin.out(), lin.in(), std::move(W));
  }
}

// ---------------------------------------------------------------------------------------------------
// Clip search.

namespace {

// dᵀ G d over the sub-block G[c0 .. c0 + n)² of G (cols × cols).
double quad_form(const std::vector<double>& G, int64_t cols, int64_t c0, const double* d, int64_t n) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    const double* Gi = G.data() + (c0 + i) * cols + c0;
    double t = 0;
    for (int64_t j = 0; j < n; j++) t += Gi[j] * d[j];
    e += d[i] * t;
  }
  return e;
}

// Error of clamping w (n) to ±bound then quantizing: d = w − Q(clamp(w)), returns dᵀ G_g d.
double clip_error(const float* w, int64_t n, float bound, const QuantGrid& grid, const std::vector<double>& G,
                  int64_t cols, int64_t c0, std::vector<float>& wc, std::vector<double>& d) {
  for (int64_t j = 0; j < n; j++) wc[size_t(j)] = std::clamp(w[j], -bound, bound);
  GroupParams p = find_params(wc.data(), n, grid);
  for (int64_t j = 0; j < n; j++) d[size_t(j)] = double(w[j]) - dequant(quantize_value(wc[size_t(j)], p, grid.bits), p);
  return quad_form(G, cols, c0, d.data(), n);
}

}  // namespace

std::vector<float> awq_search_clip(const float* W, int64_t rows, int64_t cols, const std::vector<double>& G,
                                   const AwqOptions& o) {
  const int64_t gs = o.grid.group_size(cols), ng = o.grid.ngroups(cols);
  std::vector<float> bound(static_cast<size_t>(rows * ng));
#pragma omp parallel
  {
    std::vector<float> wc(static_cast<size_t>(gs));
    std::vector<double> d(static_cast<size_t>(gs));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      for (int64_t g = 0; g < ng; g++) {
        const int64_t c0 = g * gs, n = std::min(gs, cols - c0);
        const float* w = W + r * cols + c0;
        float M = 0;
        for (int64_t j = 0; j < n; j++) M = std::max(M, std::fabs(w[j]));
        float best_b = M;
        double best = std::numeric_limits<double>::infinity();
        for (int i = 0; i < o.clip_grid; i++) {  // p = 1, 1 − max_shrink/clip_grid, ...
          const float bnd = M * (1.0f - float(i) * o.max_shrink / float(o.clip_grid));
          const double e = clip_error(w, n, bnd, o.grid, G, cols, c0, wc, d);
          if (e < best) best = e, best_b = bnd;
        }
        bound[size_t(r * ng + g)] = best_b;
      }
    }
  }
  return bound;
}

void awq_apply_clip(float* W, int64_t rows, int64_t cols, const QuantGrid& grid, const std::vector<float>& bound) {
  const int64_t gs = grid.group_size(cols), ng = grid.ngroups(cols);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      const float b = bound[size_t(r * ng + c / gs)];
      W[r * cols + c] = std::clamp(W[r * cols + c], -b, b);
    }
}

// ---------------------------------------------------------------------------------------------------
// The modifier.

class AwqModifier final : public BlockModifier {
 public:
  explicit AwqModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.grid = grid_from_stage(st, "awq");
    o_.n_grid = int(stage_int(st, "n_grid", 20, 1, 1000, "awq"));
    o_.fixed_alpha = stage_real(st, "alpha", -1.0, 0.0, 1.0, "awq");
    o_.samples = int(stage_int(st, "awq_samples", 32, 1, 1 << 20, "awq"));
    o_.clip = st.value("clip", true);
    o_.clip_grid = int(stage_int(st, "clip_grid", 20, 1, 1000, "awq"));
    o_.max_shrink = float(stage_real(st, "max_shrink", 0.5, 0.0, 0.99, "awq"));
    o_.quantize = st.value("quantize", true);
    check(st.value("duo_scaling", false) == false, "awq: duo_scaling is not implemented");
  }
  std::string name() const override { return "awq"; }
  StatsRequest stats_request() const override { return {false, true}; }
  void apply(BlockContext& ctx) override;
  const std::vector<AwqBlockReport>& reports() const { return reports_; }

 private:
  bool group_targeted(int layer, const AwqScaleGroup& g) const {
    for (LinearKind k : g.layers)
      if (!targets_.match(linear_name(layer, k))) return false;
    return true;
  }
  void note_once(const std::string& msg) {
    if (said_.insert(msg).second) std::fprintf(stderr, "awq: %s\n", msg.c_str());
  }
  void search_and_scale(BlockContext& ctx, AwqBlockReport& rep);
  void clip(BlockContext& ctx);
  void finish(BlockContext& ctx);
  void summary(int n_layers) const;

  Targets targets_;
  AwqOptions o_;
  std::vector<AwqBlockReport> reports_;
  std::set<std::string> said_;
};

void AwqModifier::apply(BlockContext& ctx) {
  check(!ctx.inputs.empty() && ctx.run_block, "awq needs calibration data (--calib FILE)");
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const std::string name = linear_name(ctx.layer, LinearKind(k));
    const Linear& lin = ctx.model.blocks[size_t(ctx.layer)].lin[size_t(k)];
    if (targets_.match(name)) check_finite(lin.w->dense(), lin.in(), name);
  }
  AwqBlockReport rep;
  rep.layer = ctx.layer;
  search_and_scale(ctx, rep);
  reports_.push_back(std::move(rep));
  if (o_.clip) clip(ctx);
  finish(ctx);
  if (ctx.layer == ctx.model.cfg.n_layers - 1) summary(ctx.model.cfg.n_layers);
}

// Step 1: per scale group, α* by block output error, then fold. The float outputs are the reference (the
// MLP probe is built per group, after the previous groups' scales are folded in).
void AwqModifier::search_and_scale(BlockContext& ctx, AwqBlockReport& rep) {
  const int ns = calib_samples(ctx, o_);
  std::unique_ptr<BlockProbe> block;
  for (const AwqScaleGroup& g : awq_llama_groups()) {
    if (!group_targeted(ctx.layer, g)) {
      note_once(fmt::format("scale group '{}' skipped: not all of its Linears are targeted", g.name));
      continue;
    }
    std::unique_ptr<MlpProbe> mlp;
    std::function<double()> error;
    if (g.inspect == AwqInspect::Mlp) {
      mlp = std::make_unique<MlpProbe>(ctx, ns);
      error = [&] { return mlp->error(); };
    } else {
      if (!block) block = std::make_unique<BlockProbe>(ctx, ns);
      error = [&] { return block->error(); };
    }
    AwqScaleResult r = awq_search_scale(ctx, g, o_, error);
    if (r.applicable)
      awq_apply_scale(ctx.model, ctx.layer, g, r.scales);
    else
      note_once(fmt::format("scale group '{}' skipped: {}", g.name, r.skipped_because));
    rep.groups.push_back(std::move(r));
  }
}

// Step 2: Gram matrices of every input site on the scaled block, then clip every targeted Linear but q/k.
void AwqModifier::clip(BlockContext& ctx) {
  Block& b = ctx.model.blocks[size_t(ctx.layer)];
  std::array<std::vector<double>, kInputSites> G;
  std::vector<float> out(ctx.inputs[0].size()), g;
  for (int s = 0; s < calib_samples(ctx, o_); s++) {
    ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
      if (k == LinearKind::K || k == LinearKind::V || k == LinearKind::Up) return;  // shared inputs: once
      const int site = kInputSite[size_t(k)];
      const int64_t c = b.at(k).in();
      G[size_t(site)].resize(size_t(c * c), 0.0);
      g.assign(size_t(c * c), 0.f);
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, int(c), int(n), 1.0f, X, int(c), 0.0f, g.data(), int(c));
      for (int64_t i = 0; i < c; i++)
        for (int64_t j = i; j < c; j++) {
          G[size_t(site)][size_t(i * c + j)] += g[size_t(i * c + j)];
          if (j != i) G[size_t(site)][size_t(j * c + i)] += g[size_t(i * c + j)];
        }
    });
  }
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const LinearKind kind = LinearKind(k);
    if (kind == LinearKind::Q || kind == LinearKind::K || !targets_.match(linear_name(ctx.layer, kind))) continue;
    Linear& lin = b.at(kind);
    std::vector<float> W = lin.w->dense();
    std::vector<float> bound = awq_search_clip(W.data(), lin.out(), lin.in(), G[size_t(kInputSite[size_t(k)])], o_);
    awq_apply_clip(W.data(), lin.out(), lin.in(), o_.grid, bound);
    lin.w = std::make_unique<DenseF32>(lin.out(), lin.in(), std::move(W));
  }
}

// Step 3: RTN into the stored format (or leave the f32 weights for a later stage).
void AwqModifier::finish(BlockContext& ctx) {
  if (!o_.quantize) return;
  Block& b = ctx.model.blocks[size_t(ctx.layer)];
  for (int k = 0; k < kLinearsPerBlock; k++) {
    if (!targets_.match(linear_name(ctx.layer, LinearKind(k)))) continue;
    Linear& lin = b.lin[size_t(k)];
    std::vector<float> W = lin.w->dense();
    lin.w = QIntMatrix::quantize(lin.out(), lin.in(), W.data(), o_.grid);
  }
}

// One line per scale group on stderr: mean α* and the block output MSE relative to RTN's.
void AwqModifier::summary(int n_layers) const {
  for (const AwqScaleGroup& g : awq_llama_groups()) {
    double a = 0, gain = 0;
    int n = 0;
    for (const auto& rep : reports_)
      for (const auto& r : rep.groups)
        if (r.applicable && r.group == g.name) a += r.alpha, gain += r.err_best / std::max(r.err_rtn, 1e-300), n++;
    if (n)
      std::fprintf(stderr, "awq: %-38s mean alpha %.2f, block output MSE %.3f x RTN's (%d of %d blocks)\n", g.name,
                   a / n, gain / n, n, n_layers);
  }
}

std::unique_ptr<BlockModifier> make_awq_modifier(const nlohmann::json& stage) {
  return std::make_unique<AwqModifier>(stage);
}

const std::vector<AwqBlockReport>& awq_reports(const BlockModifier& m) {
  static const std::vector<AwqBlockReport> none;
  const auto* a = dynamic_cast<const AwqModifier*>(&m);
  return a ? a->reports() : none;
}

}  // namespace lmp

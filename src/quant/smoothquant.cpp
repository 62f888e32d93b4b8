#include "quant/smoothquant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/dense.h"
#include "quant/quant_args.h"
#include "quant/w8a8.h"

namespace lmp {

std::vector<float> smooth_scales(const float* act_max, int64_t C, const std::vector<const Linear*>& lins,
                                 double alpha) {
  std::vector<float> wmax(size_t(C), 0.0f);
  for (const Linear* l : lins) {
    check(l->in() == C, "smoothquant: a Linear of input width {} shares an input of width {}", l->in(), C);
    std::vector<float> W = l->w->dense();
    for (int64_t r = 0; r < l->out(); r++)
      for (int64_t j = 0; j < C; j++) wmax[size_t(j)] = std::max(wmax[size_t(j)], std::fabs(W[size_t(r * C + j)]));
  }
  std::vector<float> s(size_t(C), 1.0f);
  for (int64_t j = 0; j < C; j++) {
    double a = act_max[j], w = wmax[size_t(j)];
    if (a > 0 && w > 0) s[size_t(j)] = float(std::clamp(std::pow(a, alpha) / std::pow(w, 1 - alpha), 1e-5, 1e5));
  }
  return s;
}

namespace {

// W ← W · diag(s) (columns), or rows ← diag(s)⁻¹ · W (with the bias), as new dense f32 matrices.
void scale_columns(Linear& l, const std::vector<float>& s) {
  std::vector<float> W = l.w->dense();
  const int64_t C = l.in();
  for (int64_t r = 0; r < l.out(); r++)
    for (int64_t j = 0; j < C; j++) W[size_t(r * C + j)] *= s[size_t(j)];
  l.w = std::make_unique<DenseF32>(l.out(), C, std::move(W));
}
void divide_rows(Linear& l, const std::vector<float>& s) {
  std::vector<float> W = l.w->dense();
  const int64_t C = l.in();
  for (int64_t r = 0; r < l.out(); r++) {
    for (int64_t j = 0; j < C; j++) W[size_t(r * C + j)] /= s[size_t(r)];
    if (!l.bias.empty()) l.bias[size_t(r)] /= s[size_t(r)];
  }
  l.w = std::make_unique<DenseF32>(l.out(), C, std::move(W));
}

}  // namespace

bool smoothable(const Block& b, SmoothSite site) {
  return site != SmoothSite::O || b.at(LinearKind::V).out() == b.at(LinearKind::O).in();
}

LinearKind site_kind(SmoothSite site) {
  constexpr LinearKind k[] = {LinearKind::Q, LinearKind::Gate, LinearKind::O, LinearKind::Down};
  return k[int(site)];
}

static std::vector<LinearKind> site_kinds(SmoothSite site) {
  using K = LinearKind;
  switch (site) {
    case SmoothSite::Attn: return {K::Q, K::K, K::V};
    case SmoothSite::Mlp: return {K::Gate, K::Up};
    case SmoothSite::O: return {K::O};
    case SmoothSite::Down: return {K::Down};
  }
  return {};
}

std::vector<const Linear*> site_readers(const Block& b, SmoothSite site) {
  std::vector<const Linear*> r;
  for (LinearKind k : site_kinds(site)) r.push_back(&b.at(k));
  return r;
}

void fold_smoothing(Block& b, SmoothSite site, const std::vector<float>& s) {
  using K = LinearKind;
  check(smoothable(b, site), "smoothing: o_proj input cannot be smoothed under GQA");
  switch (site) {
    case SmoothSite::Attn:
    case SmoothSite::Mlp: {
      std::vector<float>& norm = site == SmoothSite::Attn ? b.attn_norm : b.ffn_norm;
      for (size_t j = 0; j < norm.size(); j++) norm[j] /= s[j];
      break;
    }
    case SmoothSite::O: divide_rows(b.at(K::V), s); break;
    case SmoothSite::Down: divide_rows(b.at(K::Up), s); break;
  }
  for (LinearKind k : site_kinds(site)) scale_columns(b.at(k), s);
}

int smooth_block(Model& m, int layer, const BlockStats& stats, const SmoothOptions& o) {
  Block& b = m.blocks[size_t(layer)];
  std::vector<std::pair<SmoothSite, std::vector<float>>> todo;
  // Every scale from the weights as they are now, then all applied (row and column scalings commute).
  for (SmoothSite site : {SmoothSite::Attn, SmoothSite::Mlp, SmoothSite::O, SmoothSite::Down}) {
    if ((site == SmoothSite::O && !o.smooth_o) || (site == SmoothSite::Down && !o.smooth_down) || !smoothable(b, site))
      continue;
    const LinearKind k = site_kind(site);
    const LinearStats& st = stats.of(k);
    check(int64_t(st.abs_max.size()) == b.at(k).in(), "smoothquant: block {} has no max|x| statistics for {}", layer,
          kLinearNames[size_t(k)]);
    todo.emplace_back(site, smooth_scales(st.abs_max.data(), b.at(k).in(), site_readers(b, site), o.alpha));
  }
  for (const auto& [site, s] : todo) fold_smoothing(b, site, s);
  return int(todo.size());
}

namespace {

class SmoothQuantModifier final : public BlockModifier {
 public:
  explicit SmoothQuantModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.alpha = stage_real(st, "alpha", 0.5, 0.0, 1.0, "smoothquant");
    o_.smooth_o = st.value("smooth_o", true);
    o_.smooth_down = st.value("smooth_down", true);
    search_ = st.value("alpha_search", false);
    quantize_ = st.value("quantize", true);
    check(quantize_ || !search_, "smoothquant: alpha_search needs quantize (the search minimises the W8A8 error)");
    group_ = w8a8_group_from_stage(st, "smoothquant");
  }
  std::string name() const override { return "smoothquant"; }
  StatsRequest stats_request() const override { return {false, true}; }

  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    if (!search_) return smooth_and_quantize(ctx, o_.alpha);
    // α search: the original block's outputs on a few samples are the reference.
    const int ns = int(std::min<size_t>(ctx.inputs.size(), 8));
    const size_t len = ctx.inputs[0].size();
    std::vector<float> ref(size_t(ns) * len), out(len);
    for (int s = 0; s < ns; s++) ctx.run_block(s, ref.data() + size_t(s) * len);
    const Block orig = copy_block(b);
    double best_err = INFINITY, best_alpha = o_.alpha;
    for (int i = 1; i <= 9; i++) {
      const double alpha = 0.1 * i;
      smooth_and_quantize(ctx, alpha);
      double err = 0;
      for (int s = 0; s < ns; s++) {
        ctx.run_block(s, out.data());
        for (size_t j = 0; j < len; j++) {
          double d = double(out[j]) - ref[size_t(s) * len + j];
          err += d * d;
        }
      }
      if (err < best_err) best_err = err, best_alpha = alpha;
      b = copy_block(orig);
    }
    std::fprintf(stderr, "smoothquant: block %d alpha %.1f\n", ctx.layer, best_alpha);
    smooth_and_quantize(ctx, best_alpha);
  }

 private:
  void smooth_and_quantize(BlockContext& ctx, double alpha) {
    SmoothOptions o = o_;
    o.alpha = alpha;
    smooth_block(ctx.model, ctx.layer, ctx.stats, o);
    if (quantize_) quantize_block_w8a8(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_, group_);
  }
  // A deep copy with every Linear as dense f32 (what smoothing starts from).
  static Block copy_block(const Block& b) {
    Block c;
    c.attn_norm = b.attn_norm;
    c.ffn_norm = b.ffn_norm;
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const Linear& l = b.lin[size_t(k)];
      c.lin[size_t(k)].w = std::make_unique<DenseF32>(l.out(), l.in(), l.w->dense());
      c.lin[size_t(k)].bias = l.bias;
    }
    return c;
  }

  Targets targets_;
  SmoothOptions o_;
  bool search_ = false, quantize_ = true;
  int group_ = 0;
};

}  // namespace

std::unique_ptr<BlockModifier> make_smoothquant_modifier(const nlohmann::json& stage) {
  return std::make_unique<SmoothQuantModifier>(stage);
}

}  // namespace lmp

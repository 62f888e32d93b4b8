// OmniQuant: LWC (+ optional LET scales) learned block by block (see omniquant.h).
#include "quant/omniquant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/dense.h"
#include "quant/quant_args.h"
#include "train/clipquant.h"

namespace lmp {

namespace {

using train::BlockWeights;
using K = LinearKind;

// o_proj column c = h·hs + d reads value channel (h / (H/KV))·hs + d.
int64_t kv_channel(const ModelConfig& cfg, int layer, int64_t c) {
  const int hs = cfg.head_dim, group = cfg.heads(layer) / cfg.kv_heads(layer);
  return (c / hs / group) * hs + c % hs;
}

// The factor each entry of Linear k is multiplied with: columns by col(i), rows by row(o) (1 where no LET).
struct Factors {
  std::vector<float> col, row;
};
int64_t in_features(const ModelConfig& cfg, int layer, K k) {
  return k == K::Down ? cfg.ffn(layer) : k == K::O ? int64_t(cfg.heads(layer)) * cfg.head_dim : cfg.hidden;
}
Factors factors(const BlockWeights& w, const LetScales& s, const ModelConfig& cfg, int layer, K k) {
  const int64_t I = in_features(cfg, layer, k), O = int64_t(w.W[size_t(k)].size()) / I;
  Factors f{std::vector<float>(size_t(I), 1.0f), std::vector<float>(size_t(O), 1.0f)};
  const bool qkv = k == K::Q || k == K::K || k == K::V;
  if (qkv && !s.attn.empty()) f.col = s.attn;
  if ((k == K::Gate || k == K::Up) && !s.mlp.empty()) f.col = s.mlp;
  if (k == K::V && !s.vo.empty())
    for (int64_t o = 0; o < O; o++) f.row[size_t(o)] = 1.0f / s.vo[size_t(o)];
  if (k == K::O && !s.vo.empty())
    for (int64_t c = 0; c < I; c++) f.col[size_t(c)] = s.vo[size_t(kv_channel(cfg, layer, c))];
  return f;
}

}  // namespace

void let_transform(const BlockWeights& in, const LetScales& s, const ModelConfig& cfg, int layer, BlockWeights& out) {
  out = in;
  for (size_t j = 0; j < s.attn.size(); j++) out.attn_norm[j] = in.attn_norm[j] / s.attn[j];
  for (size_t j = 0; j < s.mlp.size(); j++) out.ffn_norm[j] = in.ffn_norm[j] / s.mlp[j];
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const Factors f = factors(in, s, cfg, layer, K(k));
    const size_t I = f.col.size();
    std::vector<float>& W = out.W[size_t(k)];
    for (size_t o = 0; o < f.row.size(); o++)
      for (size_t i = 0; i < I; i++) W[o * I + i] *= f.row[o] * f.col[i];
  }
}

void let_backward(const BlockWeights& in, const LetScales& s, const ModelConfig& cfg, int layer,
                  const BlockWeights& dout, LetScales& ds) {
  BlockWeights out;
  let_transform(in, s, cfg, layer, out);
  // out = in·(factor): ∂out/∂s = out/s for a factor s, −out/s for a factor 1/s.
  for (size_t j = 0; j < s.attn.size(); j++) ds.attn[j] -= dout.attn_norm[j] * out.attn_norm[j] / s.attn[j];
  for (size_t j = 0; j < s.mlp.size(); j++) ds.mlp[j] -= dout.ffn_norm[j] * out.ffn_norm[j] / s.mlp[j];
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const K kind = K(k);
    const Factors f = factors(in, s, cfg, layer, kind);
    const size_t I = f.col.size();
    const std::vector<float>&W = out.W[size_t(k)], &D = dout.W[size_t(k)];
    const bool qkv = kind == K::Q || kind == K::K || kind == K::V;
    std::vector<float>* col = qkv && !s.attn.empty()                                ? &ds.attn
                              : (kind == K::Gate || kind == K::Up) && !s.mlp.empty() ? &ds.mlp
                              : kind == K::O && !s.vo.empty()                        ? &ds.vo
                                                                                     : nullptr;
    for (size_t o = 0; o < f.row.size(); o++)
      for (size_t i = 0; i < I; i++) {
        const double g = double(D[o * I + i]) * W[o * I + i];
        if (col) (*col)[kind == K::O ? size_t(kv_channel(cfg, layer, int64_t(i))) : i] += float(g / f.col[i]);
        if (kind == K::V && !s.vo.empty()) ds.vo[o] -= float(g / s.vo[o]);
      }
  }
}

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

struct OmniOptions {
  QuantGrid grid;
  bool let = false;
  float let_lr_mult = 0.5f;  // let lr / lwc lr (5e-3 / 1e-2)
  double lwc_init = 4.0;     // γ̃ = β̃ initial value
};

class OmniQuantizer final : public train::BlockQuantizer {
 public:
  OmniQuantizer(BlockContext& ctx, const std::array<bool, kLinearsPerBlock>& tgt, const OmniOptions& o)
      : BlockQuantizer(ctx.model.blocks[size_t(ctx.layer)]), cfg_(ctx.model.cfg), layer_(ctx.layer), tgt_(tgt), o_(o) {
    const Block& b = ctx.model.blocks[size_t(ctx.layer)];
    for (int k = 0; k < kLinearsPerBlock; k++) {
      O_[size_t(k)] = int(b.lin[size_t(k)].out()), I_[size_t(k)] = int(b.lin[size_t(k)].in());
      if (!tgt[size_t(k)]) continue;
      const size_t n = size_t(O_[size_t(k)] * o.grid.ngroups(I_[size_t(k)]));
      const std::string nm = linear_name(ctx.layer, K(k));
      gamma_[size_t(k)] = add_param(nm + ".lwc_gamma", std::vector<float>(n, float(o.lwc_init)));
      beta_[size_t(k)] = add_param(nm + ".lwc_beta", std::vector<float>(n, float(o.lwc_init)));
      a_lo_[size_t(k)].resize(n), a_hi_[size_t(k)].resize(n);
    }
    if (o.let) init_let(ctx);
    dp_ = base;
  }
  std::string name() const override { return "omniquant"; }
  bool needs_grad(K k) const override { return tgt_[size_t(k)] || let_active(); }
  bool needs_norm_grad() const override { return let_s_[0] >= 0 || let_s_[1] >= 0; }

  void forward(BlockWeights& w) override {
    const BlockWeights& P = transformed();
    w.attn_norm = P.attn_norm;
    w.ffn_norm = P.ffn_norm;
    for (int k = 0; k < kLinearsPerBlock; k++) {
      if (!tgt_[size_t(k)]) {
        w.W[size_t(k)] = P.W[size_t(k)];
        continue;
      }
      update_factors(k);
      train::clipquant_forward(w.W[size_t(k)].data(), P.W[size_t(k)].data(), (const float*)nullptr,
                               a_lo_[size_t(k)].data(), a_hi_[size_t(k)].data(), O_[size_t(k)], I_[size_t(k)], o_.grid);
    }
  }

  void backward(const BlockWeights& dw) override {
    const BlockWeights& P = transformed();
    if (let_active()) dp_.zero();
    std::vector<float> dlo, dhi;
    for (int k = 0; k < kLinearsPerBlock; k++) {
      if (!tgt_[size_t(k)]) {
        if (let_active()) dp_.W[size_t(k)] = dw.W[size_t(k)];
        continue;
      }
      dlo.assign(a_lo_[size_t(k)].size(), 0.0f);
      dhi.assign(dlo.size(), 0.0f);
      train::clipquant_backward(let_active() ? dp_.W[size_t(k)].data() : nullptr, (float*)nullptr, dlo.data(),
                                dhi.data(), dw.W[size_t(k)].data(), P.W[size_t(k)].data(), (const float*)nullptr,
                                a_lo_[size_t(k)].data(), a_hi_[size_t(k)].data(), O_[size_t(k)], I_[size_t(k)],
                                o_.grid);
      chain_sigmoid(params[size_t(beta_[size_t(k)])], a_lo_[size_t(k)], dlo);
      chain_sigmoid(params[size_t(gamma_[size_t(k)])], a_hi_[size_t(k)], dhi);
    }
    if (!let_active()) return;
    dp_.attn_norm = dw.attn_norm;
    dp_.ffn_norm = dw.ffn_norm;
    LetScales s = let_scales(), ds = s;
    for (auto* v : {&ds.attn, &ds.mlp, &ds.vo}) std::fill(v->begin(), v->end(), 0.0f);
    let_backward(base, s, cfg_, layer_, dp_, ds);
    const std::vector<float>* d[3] = {&ds.attn, &ds.mlp, &ds.vo};
    for (int i = 0; i < 3; i++)
      if (let_s_[i] >= 0)
        for (size_t j = 0; j < d[i]->size(); j++) params[size_t(let_s_[i])].g[j] += (*d[i])[j];
  }

  void project() override {
    for (int i : let_s_)
      if (i >= 0)
        for (float& v : params[size_t(i)].w) v = std::max(v, 1e-5f);
  }

  void store(Block& b) override {
    const BlockWeights& P = transformed();
    b.attn_norm = P.attn_norm;
    b.ffn_norm = P.ffn_norm;
    const LetScales s = let_scales();
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const size_t i = size_t(k);
      if (tgt_[i]) {
        update_factors(k);
        b.lin[i].w = train::clipquant_store(P.W[i].data(), nullptr, a_lo_[i].data(), a_hi_[i].data(), O_[i], I_[i],
                                            o_.grid);
      } else if (P.W[i] != base.W[i]) {  // scaled by LET but not quantized
        b.lin[i].w = std::make_unique<DenseF32>(O_[i], I_[i], std::vector<float>(P.W[i]));
      }
    }
  }

  std::vector<Range> ranges() const override {  // γ, β in their sigmoid domain; LET scales as they are
    std::vector<Range> r;
    for (const auto& p : params) {
      auto [lo, hi] = std::minmax_element(p.w.begin(), p.w.end());
      const bool lwc = p.name.find(".lwc_") != std::string::npos;
      r.push_back({p.name, lwc ? sigmoid(*lo) : *lo, lwc ? sigmoid(*hi) : *hi});
    }
    return r;
  }

 private:
  bool let_active() const { return let_s_[0] >= 0 || let_s_[1] >= 0 || let_s_[2] >= 0; }
  LetScales let_scales() const {
    LetScales s;
    if (let_s_[0] >= 0) s.attn = params[size_t(let_s_[0])].w;
    if (let_s_[1] >= 0) s.mlp = params[size_t(let_s_[1])].w;
    if (let_s_[2] >= 0) s.vo = params[size_t(let_s_[2])].w;
    return s;
  }
  // The float block with the current LET scales folded in (the block itself without LET).
  const BlockWeights& transformed() {
    if (!let_active()) return base;
    let_transform(base, let_scales(), cfg_, layer_, p_);
    return p_;
  }
  void update_factors(int k) {
    const auto& g = params[size_t(gamma_[size_t(k)])].w;
    const auto& be = params[size_t(beta_[size_t(k)])].w;
    for (size_t j = 0; j < g.size(); j++) a_hi_[size_t(k)][j] = sigmoid(g[j]), a_lo_[size_t(k)][j] = sigmoid(be[j]);
  }
  static void chain_sigmoid(train::Param<float>& p, const std::vector<float>& sig, const std::vector<float>& d) {
    for (size_t j = 0; j < d.size(); j++) p.g[j] += d[j] * sig[j] * (1 - sig[j]);
  }
  void init_let(BlockContext& ctx);

  const ModelConfig& cfg_;
  int layer_;
  std::array<bool, kLinearsPerBlock> tgt_;
  OmniOptions o_;
  std::array<int, kLinearsPerBlock> O_{}, I_{}, gamma_{}, beta_{};
  std::array<std::vector<float>, kLinearsPerBlock> a_lo_, a_hi_;
  std::array<int, 3> let_s_ = {-1, -1, -1};  // attn, mlp, vo scale params
  BlockWeights p_, dp_;
};

// SmoothQuant's s_j = max|x_j|^½ / max|w_:j|^½ over the Linears reading channel j (the paper's LET init).
void OmniQuantizer::init_let(BlockContext& ctx) {
  const Block& b = ctx.model.blocks[size_t(ctx.layer)];
  auto all = [&](std::initializer_list<K> ks) {
    for (K k : ks)
      if (!tgt_[size_t(k)]) return false;
    return true;
  };
  auto smooth = [&](const std::vector<float>& act, const std::vector<float>& wmax) {
    std::vector<float> s(act.size());
    for (size_t j = 0; j < s.size(); j++)
      s[j] = std::max(1e-5f, std::sqrt(std::max(act[j], 1e-5f)) / std::sqrt(std::max(wmax[j], 1e-5f)));
    return s;
  };
  auto col_max = [&](std::initializer_list<K> ks, int64_t n, const std::function<int64_t(int64_t)>& map) {
    std::vector<float> m(size_t(n), 0.0f);
    for (K k : ks) {
      const int64_t I = I_[size_t(k)];
      const auto& W = base.W[size_t(k)];
      for (size_t e = 0; e < W.size(); e++) {
        float& t = m[size_t(map(int64_t(e) % I))];
        t = std::max(t, std::fabs(W[e]));
      }
    }
    return m;
  };
  auto id = [](int64_t c) { return c; };
  const float mult = o_.let_lr_mult;
  const std::string p = fmt::format("model.layers.{}.", ctx.layer);
  if (all({K::Q, K::K, K::V}))
    let_s_[0] = add_param(p + "let_attn", smooth(ctx.stats.of(K::Q).abs_max, col_max({K::Q, K::K, K::V}, cfg_.hidden, id)), mult);
  if (all({K::Gate, K::Up}))
    let_s_[1] = add_param(p + "let_mlp", smooth(ctx.stats.of(K::Gate).abs_max, col_max({K::Gate, K::Up}, cfg_.hidden, id)), mult);
  if (all({K::V, K::O}) && b.at(K::V).bias.empty()) {
    const int64_t nv = O_[size_t(K::V)];
    auto kv = [&](int64_t c) { return kv_channel(cfg_, ctx.layer, c); };
    std::vector<float> act(size_t(nv), 0.0f);
    const auto& ao = ctx.stats.of(K::O).abs_max;
    for (size_t c = 0; c < ao.size(); c++) act[size_t(kv(int64_t(c)))] = std::max(act[size_t(kv(int64_t(c)))], ao[c]);
    let_s_[2] = add_param(p + "let_vo", smooth(act, col_max({K::O}, nv, kv)), mult);
  }
  check(let_active(), "omniquant: --let needs q,k,v, gate,up or v,o targeted together (block {})", ctx.layer);
  p_ = base;
}

class OmniQuantModifier final : public train::ReconModifier {
 public:
  explicit OmniQuantModifier(const nlohmann::json& st) : ReconModifier(st, "omniquant") {
    o_.grid = grid_;
    o_.let = st.value("let", false);
    ro_.epochs = int(stage_int(st, "epochs", 20, 0, 100000, "omniquant"));
    ro_.batch = 1;
    ro_.optim.kind = "adamw";
    ro_.optim.lr = 1e-2;  // LWC (the reference's lwc_lr); LET's is let_lr_mult times this
    ro_.optim.weight_decay = 0;
    train::recon_options_from_stage(st, "omniquant", ro_);
    ro_.keep_best = false;
  }
  StatsRequest stats_request() const override { return {false, o_.let}; }

 protected:
  std::unique_ptr<train::BlockQuantizer> make_quantizer(BlockContext& ctx) override {
    return std::make_unique<OmniQuantizer>(ctx, targeted(ctx.layer), o_);
  }

 private:
  OmniOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_omniquant_modifier(const nlohmann::json& stage) {
  return std::make_unique<OmniQuantModifier>(stage);
}

}  // namespace lmp

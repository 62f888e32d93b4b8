#include "train/init_grow.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "core/error.h"
#include "kernels/dense.h"

namespace lmp::train {

InitScheme parse_init(const std::string& s) {
  if (s == "normal") return InitScheme::Normal;
  if (s == "scaled") return InitScheme::Scaled;
  if (s == "small") return InitScheme::Small;
  fail("--init '{}' is not known (choose normal, scaled, small)", s);
}

const char* init_name(InitScheme s) {
  return s == InitScheme::Normal ? "normal" : s == InitScheme::Scaled ? "scaled" : "small";
}

namespace {

// An empty model sharing like's tokenizer directory, with config c.
std::unique_ptr<Model> shell(const Model& like, const ModelConfig& c) {
  auto m = std::make_unique<Model>();
  m->cfg = c;
  m->dir = like.dir;
  return m;
}

void set_linear(Linear& L, int64_t rows, int64_t cols, std::vector<float> w, std::vector<float> bias = {}) {
  L.w = std::make_unique<DenseF32>(rows, cols, std::move(w));
  L.bias = std::move(bias);
}

// The head: tied → borrows embed; untied → head (V, C).
void finish_head(Model& m, std::vector<float> head) {
  if (m.cfg.tie_embeddings)
    m.retie_head();
  else
    set_linear(m.lm_head, m.cfg.vocab, m.cfg.hidden, std::move(head));
}

void require_growable(const Model& m) {
  m.require_dense_embed("growth (--grow-from)");
  check(!m.cfg.residual_shortcuts, "{}: growth of a SliceGPT model (residual shortcuts) is not supported", m.dir);
  for (const Block& b : m.blocks)
    check(b.kv_smooth.empty(), "{}: growth of a model with WKVQuant kv_smooth is not supported", m.dir);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Fresh initialisation

std::unique_ptr<Model> fresh_model(const Model& base, const FreshSpec& s) {
  ModelConfig c = base.cfg;
  auto pick = [](int v, int dflt) { return v > 0 ? v : dflt; };
  c.hidden = pick(s.hidden, c.hidden);
  c.n_layers = pick(s.layers, c.n_layers);
  c.n_heads = pick(s.heads, c.n_heads);
  c.n_kv_heads = pick(s.kv_heads, s.heads > 0 ? c.n_heads : c.n_kv_heads);
  c.intermediate = pick(s.ffn, c.intermediate);
  c.head_dim = s.head_dim > 0 ? s.head_dim : c.hidden / std::max(c.n_heads, 1);
  check(c.head_dim > 0 && c.head_dim % 2 == 0 && (s.head_dim > 0 || c.hidden % c.n_heads == 0),
        "--hidden {} / --heads {}: want an even head size (or give --head-dim)", c.hidden, c.n_heads);
  check(c.n_heads % c.n_kv_heads == 0, "--heads {} must be a multiple of --kv-heads {}", c.n_heads, c.n_kv_heads);
  c.layer_heads.clear(), c.layer_kv_heads.clear(), c.layer_intermediate.clear();
  c.residual_shortcuts = false;
  auto m = shell(base, c);
  std::mt19937_64 rng(s.seed * 0x9E3779B97F4A7C15ull + 17);
  const double base_std = s.init == InitScheme::Small ? std::sqrt(2.0 / (5.0 * c.hidden)) : 0.02;
  const double resid_std = s.init == InitScheme::Scaled ? 0.02 / std::sqrt(2.0 * c.n_layers) : base_std;
  auto randn = [&](int64_t rows, int64_t cols, double std) {
    std::normal_distribution<float> N(0.0f, float(std));
    std::vector<float> w(size_t(rows * cols));
    for (auto& x : w) x = N(rng);
    return w;
  };
  const int C = c.hidden, hs = c.head_dim, H = c.n_heads, KV = c.n_kv_heads, F = c.intermediate;
  m->embed = randn(c.vocab, C, base_std);
  m->final_norm.assign(size_t(C), 1.0f);
  for (int l = 0; l < c.n_layers; l++) {
    Block b;
    b.attn_norm.assign(size_t(C), 1.0f);
    b.ffn_norm.assign(size_t(C), 1.0f);
    const int64_t rows[kLinearsPerBlock] = {H * hs, KV * hs, KV * hs, C, F, F, C};
    const int64_t cols[kLinearsPerBlock] = {C, C, C, H * hs, C, C, F};
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const bool resid = k == int(LinearKind::O) || k == int(LinearKind::Down);
      std::vector<float> bias;
      if (c.qkv_bias && k <= int(LinearKind::V)) bias.assign(size_t(rows[k]), 0.0f);
      set_linear(b.lin[size_t(k)], rows[k], cols[k], randn(rows[k], cols[k], resid ? resid_std : base_std),
                 std::move(bias));
    }
    m->blocks.push_back(std::move(b));
  }
  finish_head(*m, c.tie_embeddings ? std::vector<float>{} : randn(c.vocab, C, base_std));
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Depth: stacking

std::unique_ptr<Model> grow_depth(const Model& small, int factor) {
  require_growable(small);
  check(factor >= 2, "--grow depth:{}x: the factor must be at least 2", factor);
  ModelConfig c = small.cfg;
  const int L = c.n_layers;
  c.n_layers = L * factor;
  auto rep = [&](std::vector<int>& v) {
    if (v.empty()) return;
    std::vector<int> r;
    for (int i = 0; i < c.n_layers; i++) r.push_back(v[size_t(i % L)]);
    v = r;
  };
  rep(c.layer_heads), rep(c.layer_kv_heads), rep(c.layer_intermediate);
  auto m = shell(small, c);
  m->embed = small.embed;
  m->final_norm = small.final_norm;
  for (int i = 0; i < c.n_layers; i++) {
    const Block& s = small.blocks[size_t(i % L)];
    Block b;
    b.attn_norm = s.attn_norm;
    b.ffn_norm = s.ffn_norm;
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const Linear& sl = s.lin[size_t(k)];
      set_linear(b.lin[size_t(k)], sl.out(), sl.in(), sl.w->dense(), sl.bias);
    }
    m->blocks.push_back(std::move(b));
  }
  finish_head(*m, c.tie_embeddings ? std::vector<float>{} : small.lm_head.w->dense());
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Width: Net2WiderNet with a random split of fan-in

namespace {

struct Widen {
  int k;
  std::mt19937_64 rng;
  // k positive fractions summing to 1
  std::vector<float> split() {
    std::uniform_real_distribution<float> U(0.5f, 1.5f);
    std::vector<float> f(static_cast<size_t>(k));
    float s = 0;
    for (auto& x : f) s += (x = U(rng));
    for (auto& x : f) x /= s;
    return f;
  }
  // W (R, I) → (R·kr, I·kc): new row (cr, r) copies row r times row_mult; when kc > 1 each entry is split
  // among the kc replicas of its input with fresh random fractions.
  std::vector<float> apply(const std::vector<float>& W, int64_t R, int64_t I, int kr, int kc, float row_mult) {
    const int64_t R2 = R * kr, I2 = I * kc;
    std::vector<float> out(size_t(R2 * I2));
    for (int64_t r2 = 0; r2 < R2; r2++) {
      const float* src = W.data() + size_t(r2 % R) * size_t(I);
      float* dst = out.data() + size_t(r2) * size_t(I2);
      for (int64_t i = 0; i < I; i++) {
        const float w = src[i] * row_mult;
        if (kc == 1) {
          dst[i] = w;
          continue;
        }
        std::vector<float> f = split();
        for (int c = 0; c < kc; c++) dst[c * I + i] = w * f[size_t(c)];
      }
    }
    return out;
  }
  std::vector<float> replicate(const std::vector<float>& v) const {
    std::vector<float> r;
    for (int c = 0; c < k; c++) r.insert(r.end(), v.begin(), v.end());
    return r;
  }
};

}  // namespace

std::unique_ptr<Model> grow_width(const Model& small, int hidden, uint64_t seed) {
  require_growable(small);
  const ModelConfig& sc = small.cfg;
  check(hidden > sc.hidden && hidden % sc.hidden == 0,
        "--grow width:{}: the new hidden size must be a multiple of the small model's {} (uniform replication keeps "
        "RMSNorm exact)", hidden, sc.hidden);
  Widen wd{hidden / sc.hidden, std::mt19937_64(seed * 0x9E3779B97F4A7C15ull + 5)};
  const int k = wd.k;
  const float a = 1.0f / float(k);  // the residual stream is carried as replicas / k
  ModelConfig c = sc;
  c.hidden = hidden;
  c.intermediate = sc.intermediate * k;
  for (int& f : c.layer_intermediate) f *= k;
  c.rms_eps = sc.rms_eps / float(k * k);
  auto m = shell(small, c);
  const int64_t C = sc.hidden, V = sc.vocab;
  // embedding (V, C) → (V, kC): every entry replicated / k (columns are outputs into the residual stream)
  {
    std::vector<float> e(size_t(V * C * k));
    for (int64_t v = 0; v < V; v++)
      for (int cc = 0; cc < k; cc++)
        for (int64_t j = 0; j < C; j++) e[size_t(v * C * k + cc * C + j)] = small.embed[size_t(v * C + j)] * a;
    m->embed = std::move(e);
  }
  m->final_norm = wd.replicate(small.final_norm);
  for (int l = 0; l < sc.n_layers; l++) {
    const Block& s = small.blocks[size_t(l)];
    Block b;
    b.attn_norm = wd.replicate(s.attn_norm);
    b.ffn_norm = wd.replicate(s.ffn_norm);
    for (int kk = 0; kk < kLinearsPerBlock; kk++) {
      const LinearKind kind = LinearKind(kk);
      const Linear& sl = s.lin[size_t(kk)];
      const int64_t R = sl.out(), I = sl.in();
      int kr = 1, kc = 1;
      float mult = 1.0f;
      std::vector<float> bias = sl.bias;
      switch (kind) {
        case LinearKind::Q: case LinearKind::K: case LinearKind::V: kc = k; break;  // read the residual
        case LinearKind::O: kr = k, mult = a; break;                               // write the residual
        case LinearKind::Gate: case LinearKind::Up: kr = k, kc = k; break;          // FFN units × k
        case LinearKind::Down: kr = k, kc = k, mult = a; break;
      }
      if (kr > 1 && !bias.empty()) {
        for (auto& x : bias) x *= mult;
        bias = wd.replicate(bias);
      }
      set_linear(b.lin[size_t(kk)], R * kr, I * kc, wd.apply(sl.w->dense(), R, I, kr, kc, mult), std::move(bias));
    }
    m->blocks.push_back(std::move(b));
  }
  finish_head(*m, c.tie_embeddings ? std::vector<float>{} : wd.apply(small.lm_head.w->dense(), V, C, 1, k, 1.0f));
  return m;
}

std::unique_ptr<Model> grow(const Model& small, const std::string& spec, uint64_t seed) {
  const size_t colon = spec.find(':');
  const std::string kind = spec.substr(0, colon), arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  try {
    if (kind == "depth" && !arg.empty() && arg.back() == 'x') return grow_depth(small, std::stoi(arg));
    if (kind == "width" && !arg.empty()) return grow_width(small, std::stoi(arg), seed);
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
  }
  fail("--grow '{}': want depth:Kx (stack K copies of the blocks) or width:H (Net2Net, H a multiple of hidden)", spec);
}

}  // namespace lmp::train

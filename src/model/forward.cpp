#include "model/forward.h"

#include <cmath>
#include <omp.h>

#include "core/error.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// RoPE: theta_i = base^(-2i/hs), i < hs/2; HF "rotate half": pairs (x_i, x_{i+hs/2}) rotate by pos·theta_i.
// llama3 scaling keeps high frequencies, divides low ones by `factor`, and interpolates in between.

Rope::Rope(const ModelConfig& c) : hs_(c.head_dim), inv_freq_(size_t(c.head_dim / 2)) {
  for (int i = 0; i < hs_ / 2; i++) {
    double f = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / hs_);
    if (c.rope_scaling == RopeScaling::Linear) f /= c.rope_factor;
    if (c.rope_scaling == RopeScaling::Llama3) {
      double low_wavelen = c.rope_orig_max_pos / c.rope_low_freq_factor;
      double high_wavelen = c.rope_orig_max_pos / c.rope_high_freq_factor;
      double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= c.rope_factor;
      } else if (wavelen >= high_wavelen) {
        double smooth = (c.rope_orig_max_pos / wavelen - c.rope_low_freq_factor) /
                        (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - smooth) * f / c.rope_factor + smooth * f;
      }
    }
    inv_freq_[i] = float(f);
  }
}

void Rope::apply(float* x, int heads, int pos) const {
  const int half = hs_ / 2;
  for (int i = 0; i < half; i++) {
    double a = double(pos) * inv_freq_[i];
    float c = float(std::cos(a)), s = float(std::sin(a));
    for (int h = 0; h < heads; h++) {
      float* xh = x + size_t(h) * hs_;
      float x0 = xh[i], x1 = xh[i + half];
      xh[i] = x0 * c - x1 * s;
      xh[i + half] = x1 * c + x0 * s;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Building blocks

// out (n, C) = x / sqrt(mean(x²) + eps) * w
void rmsnorm(const float* x, const float* w, float eps, int n, int C, float* out) {
  for (int t = 0; t < n; t++) {
    const float* xt = x + size_t(t) * C;
    double ss = 0;
    for (int i = 0; i < C; i++) ss += double(xt[i]) * xt[i];
    float r = float(1.0 / std::sqrt(ss / C + eps));
    for (int i = 0; i < C; i++) out[size_t(t) * C + i] = xt[i] * r * w[i];
  }
}

void Linear::forward(const float* X, int64_t n, float* Y) const {
  w->matmul(X, n, Y);
  if (!bias.empty())
    for (int64_t t = 0; t < n; t++)
      for (int64_t o = 0; o < out(); o++) Y[t * out() + o] += bias[size_t(o)];
}

Forward::Forward(const Model& m) : m_(m), rope_(m.cfg) {}

static void grow(std::vector<float>& v, size_t n) {
  if (v.size() < n) v.resize(n);
}

// Causal grouped-query attention over the cache for n new queries q (n, H, hs) at positions pos0..;
// query head h reads kv head h / (H/KV). out (n, H, hs) = softmax(q·Kᵀ/√hs) · V.
static void attention(const float* q, int n, int pos0, int H, int KV, int hs, const KVCache& cache, int layer,
                      float* out) {
  const int group = H / KV;
  const float scale = 1.0f / std::sqrt(float(hs));
  // Threads only pay off with enough work: waking a team costs microseconds, a tiny model's decode step less.
  const double work = double(H) * n * (pos0 + n) * hs;
#pragma omp parallel if (work > 1 << 16)
  {
    std::vector<float> scratch;
#pragma omp for collapse(2) schedule(dynamic, 4)
    for (int h = 0; h < H; h++)
      for (int t = 0; t < n; t++)
        cache.attend(layer, h / group, q + (size_t(t) * H + h) * hs, pos0 + t, scale, out + (size_t(t) * H + h) * hs,
                     scratch);
  }
}

// x (n, C) = S·x + y: the residual add, through the residual shortcut S when the block has one (SliceGPT).
static void residual_add(const Linear& shortcut, float* x, const float* y, size_t nC, int n, std::vector<float>& tmp) {
  if (shortcut.w) {
    grow(tmp, nC);
    shortcut.forward(x, n, tmp.data());
    std::copy_n(tmp.data(), nC, x);
  }
  for (size_t i = 0; i < nC; i++) x[i] += y[i];
}

static inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

void Forward::block(int l, float* x, int n, KVCache& cache, const LinearHook* hook) {
  const ModelConfig& c = m_.cfg;
  const Block& b = m_.blocks[size_t(l)];
  const int C = c.hidden, hs = c.head_dim, H = c.heads(l), KV = c.kv_heads(l), F = c.ffn(l);
  const int pos0 = cache.length();
  check(pos0 + n <= cache.capacity(), "context of {} tokens exceeds the KV cache capacity {}", pos0 + n,
        cache.capacity());
  grow(h_, size_t(n) * C);
  grow(q_, size_t(n) * H * hs);
  grow(k_, size_t(n) * KV * hs);
  grow(v_, size_t(n) * KV * hs);
  grow(att_, size_t(n) * H * hs);
  grow(o_, size_t(n) * C);
  grow(g_, size_t(n) * F);
  grow(u_, size_t(n) * F);
  auto run = [&](LinearKind k, const float* in, float* out) {
    const Linear& lin = b.at(k);
    if (hook) (*hook)(l, k, in, n, lin.in());
    lin.forward(in, n, out);
  };

  // attention: x += o_proj(attn(rope(q), rope(k), v)) with q,k,v from rmsnorm(x)
  rmsnorm(x, b.attn_norm.data(), c.rms_eps, n, C, h_.data());
  run(LinearKind::Q, h_.data(), q_.data());
  run(LinearKind::K, h_.data(), k_.data());
  run(LinearKind::V, h_.data(), v_.data());
  const bool pre_rope = cache.quant().pre_rope;  // KVQuant: the cache holds un-rotated keys
  for (int t = 0; t < n; t++) {
    rope_.apply(q_.data() + size_t(t) * H * hs, H, pos0 + t);
    float* kt = k_.data() + size_t(t) * KV * hs;
    if (pre_rope) cache.store(l, pos0 + t, kt, v_.data() + size_t(t) * KV * hs, &b.kv_smooth);
    rope_.apply(kt, KV, pos0 + t);
    if (!pre_rope) cache.store(l, pos0 + t, kt, v_.data() + size_t(t) * KV * hs, &b.kv_smooth);
  }
  attention(q_.data(), n, pos0, H, KV, hs, cache, l, att_.data());
  run(LinearKind::O, att_.data(), o_.data());
  residual_add(b.attn_shortcut, x, o_.data(), size_t(n) * C, n, g_);  // g_ is free until the MLP

  // MLP: x += down(silu(gate(h)) * up(h)) with h = rmsnorm(x)
  rmsnorm(x, b.ffn_norm.data(), c.rms_eps, n, C, h_.data());
  run(LinearKind::Gate, h_.data(), g_.data());
  run(LinearKind::Up, h_.data(), u_.data());
  for (size_t i = 0; i < size_t(n) * F; i++) g_[i] = silu(g_[i]) * u_[i];
  run(LinearKind::Down, g_.data(), o_.data());
  residual_add(b.mlp_shortcut, x, o_.data(), size_t(n) * C, n, u_);  // u_ is free after down
}

void Forward::embed(const int* ids, int n, float* x) const {
  const int C = m_.cfg.hidden;
  for (int t = 0; t < n; t++) {
    check(ids[t] >= 0 && ids[t] < m_.cfg.vocab, "token id {} outside the vocabulary (0..{})", ids[t], m_.cfg.vocab - 1);
    m_.embed_row(ids[t], x + size_t(t) * C);
  }
}

void Forward::head(const float* x, int n, float* logits) {
  const int C = m_.cfg.hidden;
  std::vector<float> h(size_t(n) * C);
  rmsnorm(x, m_.final_norm.data(), m_.cfg.rms_eps, n, C, h.data());
  m_.lm_head.forward(h.data(), n, logits);
}

void Forward::tokens(const int* ids, int n, KVCache& cache, float* logits, bool last_only, const LinearHook* hook) {
  const int C = m_.cfg.hidden;
  std::vector<float> x(size_t(n) * C);
  embed(ids, n, x.data());
  for (int l = 0; l < m_.cfg.n_layers; l++) block(l, x.data(), n, cache, hook);
  cache.advance(n);
  if (last_only)
    head(x.data() + size_t(n - 1) * C, 1, logits);
  else
    head(x.data(), n, logits);
}

}  // namespace lmp

#include "model/kv_cache.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "model/forward.h"

namespace lmp {

void check_kv_options(const KVQuantOptions& o, const char* what) {
  check(o.bits == 0 || o.bits == 2 || o.bits == 4 || o.bits == 8, "{}: KV cache bits {} not supported (2, 4 or 8)",
        what, o.bits);
  check(o.group_tokens >= 1 && o.residual >= 0 && o.value_group >= 1, "{}: KV group/residual sizes must be positive",
        what);
  check(o.method == KVMethod::Kivi || !o.pre_rope,
        "{}: --kv-pre-rope is a KIVI option; wkvquant smooths post-RoPE keys (its calibration sees those)", what);
}

namespace {

// b-bit code e of a packed array (b ∈ {2,4,8}: codes never straddle bytes).
inline int get_code(const uint8_t* c, size_t e, int bits) {
  size_t bit = e * size_t(bits);
  return (c[bit >> 3] >> (bit & 7)) & ((1 << bits) - 1);
}
inline void put_code(uint8_t* c, size_t e, int bits, int q) { c[(e * size_t(bits)) >> 3] |= uint8_t(q << ((e * size_t(bits)) & 7)); }

// Asymmetric params of values x[0], x[stride], ... (n of them), rounded to f16 before use.
inline void minmax_params(const float* x, int n, size_t stride, int bits, f16_t* scale, f16_t* mn) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) lo = std::min(lo, x[i * stride]), hi = std::max(hi, x[i * stride]);
  float s = (hi - lo) / float((1 << bits) - 1);
  *mn = f32_to_f16(lo);
  *scale = f32_to_f16(s > 0 ? s : 1.0f);
  // f16 rounding can move min above lo or shrink the range: codes are clamped when quantizing.
}

inline int encode(float x, float s, float m, int bits) {
  float q = std::nearbyint((x - m) / s);
  float maxq = float((1 << bits) - 1);
  return int(q < 0 ? 0 : (q > maxq ? maxq : q));
}

}  // namespace

KVCache::KVCache(const ModelConfig& cfg, int capacity, const KVQuantOptions& q)
    : capacity_(capacity), hs_(cfg.head_dim), layers_(cfg.n_layers), kv_heads_(0), q_(q) {
  check_kv_options(q, "KV cache");
  for (int l = 0; l < cfg.n_layers; l++) {
    layer_kv_.push_back(cfg.kv_heads(l));
    kv_heads_ = std::max(kv_heads_, cfg.kv_heads(l));
  }
  q_.value_group = std::min(q_.value_group, hs_);
  vgroups_ = (hs_ + q_.value_group - 1) / q_.value_group;
  heads_.resize(size_t(layers_) * kv_heads_);
  const bool windowed = q_.quantized() && q_.method == KVMethod::Kivi;
  const int tail_cap = windowed ? std::min(capacity, q_.residual + q_.group_tokens) : capacity;
  smooth_.resize(size_t(layers_));
  for (auto& h : heads_) {
    h.tk.reserve(size_t(tail_cap) * hs_);
    h.tv.reserve(size_t(tail_cap) * hs_);
  }
  if (q_.pre_rope) rope_ = new Rope(cfg);
}

KVCache::~KVCache() { delete rope_; }

KVCache::KVCache(const KVCache& o)
    : capacity_(o.capacity_), hs_(o.hs_), layers_(o.layers_), kv_heads_(o.kv_heads_), len_(o.len_), qlen_(o.qlen_),
      vgroups_(o.vgroups_), layer_kv_(o.layer_kv_), q_(o.q_), heads_(o.heads_), smooth_(o.smooth_), rope_(o.rope_ ? new Rope(*o.rope_) : nullptr) {}

void KVCache::clear() {
  len_ = qlen_ = 0;
  for (auto& h : heads_) {
    h.tk.clear(), h.tv.clear(), h.kc.clear(), h.vc.clear(), h.kp.clear(), h.vp.clear();
  }
  for (auto& s : smooth_) s.clear();
}

void KVCache::store(int layer, int pos, const float* k, const float* v, const std::vector<float>* smooth) {
  check(pos >= len_ && pos < capacity_, "KV cache: position {} outside [{}, {})", pos, len_, capacity_);
  const bool wkv = q_.quantized() && q_.method == KVMethod::Wkv;
  const int nkv = layer_kv_[size_t(layer)];
  if (wkv && smooth && !smooth->empty() && smooth_[size_t(layer)].empty()) {
    check(smooth->size() == size_t(4) * nkv * hs_, "KV cache: layer {} kv_smooth has {} values, expected {}", layer,
          smooth->size(), size_t(4) * nkv * hs_);
    smooth_[size_t(layer)] = *smooth;
  }
  const size_t off = size_t(pos - qlen_) * hs_;
  for (int g = 0; g < nkv; g++) {
    Head& h = head(layer, g);
    if (h.tk.size() < off + hs_) h.tk.resize(off + hs_), h.tv.resize(off + hs_);
    std::memcpy(&h.tk[off], k + size_t(g) * hs_, sizeof(float) * hs_);
    std::memcpy(&h.tv[off], v + size_t(g) * hs_, sizeof(float) * hs_);
    if (wkv) {
      check(h.kp.size() == size_t(pos) * vgroups_ * 2, "KV cache: layer {} position {} stored out of order", layer, pos);
      quantize_token(layer, g, k + size_t(g) * hs_, v + size_t(g) * hs_);
    }
  }
}

// Wkv: x̃ = (x − δ) / s, then per group of value_group channels one (scale, min) pair; appended at the
// head's next position. row 0/1 of the layer's smoothing are the key shift/scale, rows 2/3 the value's.
void KVCache::quantize_token(int layer, int g, const float* k, const float* v) {
  Head& h = head(layer, g);
  const int b = q_.bits;
  const std::vector<float>& sm = smooth_[size_t(layer)];
  const size_t W = size_t(layer_kv_[size_t(layer)]) * hs_, off = size_t(g) * hs_;
  const size_t pos = h.kp.size() / (size_t(vgroups_) * 2);
  std::vector<float> xs(static_cast<size_t>(hs_));
  for (int kind = 0; kind < 2; kind++) {
    const float* x = kind == 0 ? k : v;
    std::vector<uint8_t>& codes = kind == 0 ? h.kc : h.vc;
    std::vector<f16_t>& par = kind == 0 ? h.kp : h.vp;
    for (int i = 0; i < hs_; i++)
      xs[size_t(i)] = sm.empty() ? x[i] : (x[i] - sm[2 * kind * W + off + i]) / sm[(2 * kind + 1) * W + off + i];
    codes.resize(codes.size() + size_t(hs_) * b / 8, 0);
    for (int gr = 0; gr < vgroups_; gr++) {
      const int c0 = gr * q_.value_group, n = std::min(q_.value_group, hs_ - c0);
      f16_t sc, mn;
      minmax_params(&xs[size_t(c0)], n, 1, b, &sc, &mn);
      par.push_back(sc), par.push_back(mn);
      const float sf = f16_to_f32(sc), mf = f16_to_f32(mn);
      for (int i = c0; i < c0 + n; i++) put_code(codes.data(), pos * hs_ + i, b, encode(xs[size_t(i)], sf, mf, b));
    }
  }
}

void KVCache::advance(int n) {
  len_ += n;
  if (!q_.quantized()) return;
  if (q_.method == KVMethod::Wkv) {  // past-only: what this call stored is now past, read quantized
    qlen_ = len_;
    for (auto& h : heads_) h.tk.clear(), h.tv.clear();
    return;
  }
  while (len_ - qlen_ >= q_.residual + q_.group_tokens) {
    for (int l = 0; l < layers_; l++)
      for (int g = 0; g < layer_kv_[size_t(l)]; g++) quantize_chunk(head(l, g));
    qlen_ += q_.group_tokens;
  }
}

// Quantizes tail positions [0, G) (= sequence positions [qlen, qlen+G)) and drops them from the tail.
void KVCache::quantize_chunk(Head& h) {
  const int G = q_.group_tokens, b = q_.bits;
  const size_t codes = size_t(G) * hs_ * b / 8, kc0 = h.kc.size(), vc0 = h.vc.size();
  h.kc.resize(kc0 + codes, 0);
  h.vc.resize(vc0 + codes, 0);
  // keys: per channel i over the chunk's G tokens
  const size_t kp0 = h.kp.size();
  h.kp.resize(kp0 + size_t(hs_) * 2);
  for (int i = 0; i < hs_; i++) {
    f16_t s, m;
    minmax_params(&h.tk[i], G, size_t(hs_), b, &s, &m);
    h.kp[kp0 + 2 * i] = s, h.kp[kp0 + 2 * i + 1] = m;
    float sf = f16_to_f32(s), mf = f16_to_f32(m);
    for (int t = 0; t < G; t++) put_code(&h.kc[kc0], size_t(t) * hs_ + i, b, encode(h.tk[size_t(t) * hs_ + i], sf, mf, b));
  }
  // values: per token, per group of value_group channels
  const size_t vp0 = h.vp.size();
  h.vp.resize(vp0 + size_t(G) * vgroups_ * 2);
  for (int t = 0; t < G; t++)
    for (int g = 0; g < vgroups_; g++) {
      const int c0 = g * q_.value_group, n = std::min(q_.value_group, hs_ - c0);
      f16_t s, m;
      minmax_params(&h.tv[size_t(t) * hs_ + c0], n, 1, b, &s, &m);
      size_t p = vp0 + (size_t(t) * vgroups_ + g) * 2;
      h.vp[p] = s, h.vp[p + 1] = m;
      float sf = f16_to_f32(s), mf = f16_to_f32(m);
      for (int i = c0; i < c0 + n; i++)
        put_code(&h.vc[vc0], size_t(t) * hs_ + i, b, encode(h.tv[size_t(t) * hs_ + i], sf, mf, b));
    }
  h.tk.erase(h.tk.begin(), h.tk.begin() + size_t(G) * hs_);
  h.tv.erase(h.tv.begin(), h.tv.begin() + size_t(G) * hs_);
}

// Per-token groups of position j (Wkv) decoded and un-smoothed with rows `row`, `row + 1` of the layer's δ, s.
static void decode_token(const uint8_t* codes, const f16_t* par, int j, int hs, int bits, int group, int vgroups,
                         const float* shift, const float* scale, float* x) {
  for (int g = 0; g < vgroups; g++) {
    const f16_t* p = par + (size_t(j) * vgroups + g) * 2;
    const float s = f16_to_f32(p[0]), m = f16_to_f32(p[1]);
    for (int i = g * group, e = std::min(hs, i + group); i < e; i++)
      x[i] = float(get_code(codes, size_t(j) * hs + i, bits)) * s + m;
  }
  if (shift)
    for (int i = 0; i < hs; i++) x[i] = x[i] * scale[i] + shift[i];
}

void KVCache::raw_key(int l, int g, int j, float* k) const {
  const Head& h = head(l, g);
  if (j >= qlen_) {
    std::memcpy(k, &h.tk[size_t(j - qlen_) * hs_], sizeof(float) * hs_);
  } else if (q_.method == KVMethod::Wkv) {
    const std::vector<float>& sm = smooth_[size_t(l)];
    const size_t W = size_t(layer_kv_[size_t(l)]) * hs_, off = size_t(g) * hs_;
    decode_token(h.kc.data(), h.kp.data(), j, hs_, q_.bits, q_.value_group, vgroups_,
                 sm.empty() ? nullptr : &sm[off], sm.empty() ? nullptr : &sm[W + off], k);
  } else {
    const int c = j / q_.group_tokens;
    const f16_t* p = &h.kp[size_t(c) * hs_ * 2];
    for (int i = 0; i < hs_; i++)
      k[i] = float(get_code(h.kc.data(), size_t(j) * hs_ + i, q_.bits)) * f16_to_f32(p[2 * i]) + f16_to_f32(p[2 * i + 1]);
  }
}

void KVCache::key(int l, int g, int j, float* k) const {
  raw_key(l, g, j, k);
  if (rope_) rope_->apply(k, 1, j);
}

void KVCache::value(int l, int g, int j, float* v) const {
  const Head& h = head(l, g);
  if (j >= qlen_) {
    std::memcpy(v, &h.tv[size_t(j - qlen_) * hs_], sizeof(float) * hs_);
    return;
  }
  const std::vector<float>& sm = smooth_[size_t(l)];
  const size_t W = size_t(layer_kv_[size_t(l)]) * hs_, off = size_t(g) * hs_;
  const bool smooth = q_.method == KVMethod::Wkv && !sm.empty();
  decode_token(h.vc.data(), h.vp.data(), j, hs_, q_.bits, q_.value_group, vgroups_, smooth ? &sm[2 * W + off] : nullptr,
               smooth ? &sm[3 * W + off] : nullptr, v);
}

void KVCache::read(int layer, int kv_head, int j, float* k, float* v) const {
  check(j >= 0 && j < len_ && kv_head < layer_kv_[size_t(layer)], "KV cache: read of position {} head {} outside", j,
        kv_head);
  raw_key(layer, kv_head, j, k);
  value(layer, kv_head, j, v);
}

// Softmax-weighted sum over positions 0..T-1 given raw scores in p (overwritten by the weights).
static void softmax_inplace(float* p, int T) {
  float mx = -INFINITY, sum = 0;
  for (int j = 0; j < T; j++) mx = std::max(mx, p[j]);
  for (int j = 0; j < T; j++) sum += (p[j] = std::exp(p[j] - mx));
  const float inv = 1.0f / sum;
  for (int j = 0; j < T; j++) p[j] *= inv;
}

void KVCache::attend(int layer, int kv_head, const float* q, int t, float scale, float* out,
                     std::vector<float>& scratch) const {
  const Head& h = head(layer, kv_head);
  const int T = t + 1, hs = hs_;
  if (scratch.size() < size_t(T + hs)) scratch.resize(size_t(T + hs) * 2);
  float* p = scratch.data();
  float* tmp = scratch.data() + T;
  // scores: decoded keys for the quantized prefix (or every key when rotated on read), tail keys in place
  const int first_tail = rope_ ? T : std::min(qlen_, T);
  for (int j = 0; j < first_tail; j++) {
    key(layer, kv_head, j, tmp);
    float s = 0;
    for (int i = 0; i < hs; i++) s += q[i] * tmp[i];
    p[j] = s * scale;
  }
  for (int j = first_tail; j < T; j++) {
    const float* kj = &h.tk[size_t(j - qlen_) * hs];
    float s = 0;
    for (int i = 0; i < hs; i++) s += q[i] * kj[i];
    p[j] = s * scale;
  }
  softmax_inplace(p, T);
  for (int i = 0; i < hs; i++) out[i] = 0;
  const int qv = std::min(qlen_, T);
  for (int j = 0; j < qv; j++) {
    value(layer, kv_head, j, tmp);
    for (int i = 0; i < hs; i++) out[i] += p[j] * tmp[i];
  }
  for (int j = qv; j < T; j++) {
    const float* vj = &h.tv[size_t(j - qlen_) * hs];
    for (int i = 0; i < hs; i++) out[i] += p[j] * vj[i];
  }
}

size_t KVCache::bytes() const {
  size_t b = 0;
  const size_t tail = size_t(len_ - qlen_) * hs_ * sizeof(float) * 2;
  for (int l = 0; l < layers_; l++)
    for (int g = 0; g < layer_kv_[size_t(l)]; g++) {
      const Head& h = head(l, g);
      b += tail + h.kc.size() + h.vc.size() + (h.kp.size() + h.vp.size()) * sizeof(f16_t);
    }
  return b;
}

}  // namespace lmp

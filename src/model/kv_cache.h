// The KV cache, in full precision or quantized at run time as in KIVI (Liu et al. 2024, "KIVI: A Tuning-Free
// Asymmetric 2bit Quantization for KV Cache", arXiv 2402.02750): keys per channel, values per token.
//  - The most recent tokens (between `residual` and `residual + group_tokens` of them) stay in f32.
//  - When group_tokens older tokens have accumulated, they are quantized as one chunk: keys with one
//    asymmetric (scale, min) pair per channel over the chunk's tokens (key outliers live in channels),
//    values with one pair per token per group of `value_group` channels. Codes are packed at b bits; scale
//    and min are stored as f16 (rounded first, then used to quantize, so decoding is exact).
//  - pre_rope (KVQuant, Hooper et al. 2024): keys are cached before RoPE and rotated when read, so the
//    per-channel statistics are not smeared by the position-dependent rotation.
// Attention reads the quantized cache directly (codes are decoded key by key; no f32 copy of the past).
//
// method Wkv: WKVQuant (Yue et al. 2024, "WKVQuant: Quantizing Weight and Key/Value Cache for Large Language
// Models Gains More", arXiv 2402.12065):
//  - past-only quantization: the tokens of the current forward call (the one decoded token, or the whole
//    prefill) attend to their own K/V in f32; they are stored quantized at once and only the quantized copy
//    is read by later calls (no f32 residual window: every past token is quantized).
//  - two-dimensional quantization: a static per-channel shift δ and scale s (calibrated offline by the
//    `wkvquant` recipe stage, quant/wkvquant.h, stored in the model as Block::kv_smooth) turn x into
//    x̃ = (x − δ) / s, then x̃ is quantized dynamically per token, one asymmetric (scale, min) pair per group of
//    value_group channels (f16, as above); decoding gives x̂ = Q(x̃) · s + δ. Both keys and values.
//    A model without kv_smooth uses δ = 0, s = 1 (plain per-token).
#pragma once
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "model/config.h"

namespace lmp {

class Rope;

enum class KVMethod { Kivi, Wkv };

struct KVQuantOptions {
  KVMethod method = KVMethod::Kivi;
  int bits = 0;            // 0 = f32 cache; 2, 4 or 8
  int group_tokens = 32;   // tokens per key chunk
  int residual = 32;       // recent tokens kept in f32
  int value_group = 32;    // channels per value group (clamped to head_dim); Wkv: keys too
  bool pre_rope = false;
  bool quantized() const { return bits > 0; }
};
// Validates (bits ∈ {0,2,4,8}, positive sizes); throws lmp::Error naming `what`.
void check_kv_options(const KVQuantOptions& o, const char* what);

class KVCache {
 public:
  KVCache(const ModelConfig& cfg, int capacity, const KVQuantOptions& q = {});
  ~KVCache();
  KVCache(const KVCache&);
  KVCache& operator=(const KVCache&) = delete;
  int capacity() const { return capacity_; }
  int length() const { return len_; }
  const KVQuantOptions& quant() const { return q_; }
  void clear();
  // Stores the keys and values (kv_heads × head_dim each) of `layer` at position pos ∈ [length(), capacity).
  // Keys are post-RoPE, or pre-RoPE when quant().pre_rope. smooth: the layer's Block::kv_smooth (Wkv only;
  // nullptr or empty = identity), copied on the layer's first store after clear().
  void store(int layer, int pos, const float* k, const float* v, const std::vector<float>* smooth = nullptr);
  // out (head_dim) = Σ_{j≤t} softmax_j(scale · q·k_j) · v_j for kv head `kv_head` of `layer`.
  // scratch is per-thread work space.
  void attend(int layer, int kv_head, const float* q, int t, float scale, float* out,
              std::vector<float>& scratch) const;
  // Marks n stored positions as part of the sequence and quantizes the chunks that left the residual window.
  void advance(int n);
  size_t bytes() const;  // bytes held for the current length (codes, f16 params, f32 tail)
  int quantized_length() const { return qlen_; }
  // The key (as stored: pre-RoPE when pre_rope) and value at position j < length() as attention reads them.
  void read(int layer, int kv_head, int j, float* k, float* v) const;

 private:
  struct Head {
    std::vector<float> tk, tv;     // f32 tail: positions [qlen, ...), (tail, hs)
    std::vector<uint8_t> kc, vc;   // packed codes of positions [0, qlen): (qlen · hs · bits / 8)
    std::vector<f16_t> kp;         // key params: (chunks, hs, {scale, min})
    std::vector<f16_t> vp;         // value params: (qlen, groups, {scale, min})
  };
  Head& head(int l, int g) { return heads_[size_t(l) * kv_heads_ + g]; }
  const Head& head(int l, int g) const { return heads_[size_t(l) * kv_heads_ + g]; }
  void quantize_chunk(Head& h);
  void quantize_token(int layer, int g, const float* k, const float* v);  // Wkv
  void raw_key(int l, int g, int j, float* k) const;  // decoded, as stored (not rotated)
  void key(int l, int g, int j, float* k) const;   // decoded (and rotated if pre_rope) key at position j
  void value(int l, int g, int j, float* v) const;

  int capacity_, hs_, layers_, kv_heads_, len_ = 0, qlen_ = 0, vgroups_;
  std::vector<int> layer_kv_;  // kv heads of each layer (≤ kv_heads_ after structured pruning)
  KVQuantOptions q_;
  std::vector<Head> heads_;
  std::vector<std::vector<float>> smooth_;  // Wkv: per layer (4, kv_heads · hs) or empty
  Rope* rope_ = nullptr;  // for pre_rope keys
};

}  // namespace lmp

// The forward pass: batched prefill over a sequence and incremental decode with a KV cache, with a hook on
// the input of every Linear (what calibration uses).
#pragma once
#include <functional>
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace lmp {

// Hook on the input X (n, cols) of Linear `kind` of block `layer`, called before the Linear runs.
using LinearHook = std::function<void(int layer, LinearKind kind, const float* X, int64_t n, int64_t cols)>;

// Rotary embedding tables (HF rotate-half layout), with linear / llama3 frequency scaling.
class Rope {
 public:
  explicit Rope(const ModelConfig& cfg);
  // Rotates x (heads, hs) in place for position pos.
  void apply(float* x, int heads, int pos) const;

 private:
  int hs_;
  std::vector<float> inv_freq_;  // (hs/2)
};

class Forward {
 public:
  explicit Forward(const Model& m);
  // x (n, C) is the residual stream at positions cache.length() .. +n-1; runs block l in place and appends
  // this block's K/V to the cache (the caller advances the cache after the last block).
  void block(int l, float* x, int n, KVCache& cache, const LinearHook* hook = nullptr);
  // Logits (n, V) of tokens placed at cache.length()..; advances the cache. If last_only, logits is (1, V).
  void tokens(const int* ids, int n, KVCache& cache, float* logits, bool last_only = false,
              const LinearHook* hook = nullptr);
  // Embedding rows for ids into x (n, C).
  void embed(const int* ids, int n, float* x) const;
  // Final norm + LM head on x (n, C) into logits (n, V).
  void head(const float* x, int n, float* logits);
  const Model& model() const { return m_; }

 private:
  const Model& m_;
  Rope rope_;
  std::vector<float> h_, q_, k_, v_, att_, o_, g_, u_;  // scratch, grown on demand
};

void rmsnorm(const float* x, const float* w, float eps, int n, int C, float* out);

}  // namespace lmp

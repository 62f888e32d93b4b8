// Perplexity (models/README.md protocol): cut the token stream into consecutive windows of ctx tokens
// (remainder dropped), run each from position 0 with an empty cache, score every token of the window but
// its first; ppl = exp(mean NLL). With stride < ctx, windows start every `stride` tokens and only the
// tokens not scored by an earlier window are scored (the sliding-window variant).
// With a quantized KV cache, each window is fed in chunks of kv.group_tokens tokens so that later tokens
// attend to the quantized past (beyond the f32 residual window), as they would when decoding.
#pragma once
#include <vector>

#include "model/kv_cache.h"
#include "model/model.h"

namespace lmp {

struct PplOptions {
  int ctx = 512;
  int stride = 0;         // 0 = ctx (non-overlapping)
  int max_windows = 0;    // 0 = all
  bool progress = true;
  KVQuantOptions kv;      // KV-cache quantization during evaluation (bits 0 = f32)
};

struct PplResult {
  double ppl = 0, nll = 0;  // nll = mean negative log-likelihood (nats)
  long tokens = 0;          // tokens in the stream
  long windows = 0;
  long scored = 0;
  double seconds = 0;
  double tokens_per_s = 0;  // processed (window) tokens per second
};

PplResult perplexity(const Model& m, const std::vector<int>& ids, const PplOptions& opt);

// −log softmax(logits)[target], computed in double.
double token_nll(const float* logits, int vocab, int target);

}  // namespace lmp

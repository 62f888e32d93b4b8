// Token generation: greedy (temperature 0) or sampling with temperature, top-k and top-p, seeded.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "model/model.h"

namespace lmp {

struct SamplingOptions {
  float temperature = 0.f;  // 0 = greedy
  int top_k = 0;            // 0 = off
  float top_p = 1.f;        // 1 = off
  uint64_t seed = 0;
};

struct KVQuantOptions;

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& o) : o_(o), rng_(o.seed) {}
  int sample(const float* logits, int vocab);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
};

struct GenerateResult {
  std::vector<int> ids;    // generated ids (prompt excluded)
  double prefill_s = 0, decode_s = 0;
};

// Runs prompt (BOS alone when empty), then up to max_new tokens; stops at BOS/EOS. on_token(id) is
// called for each generated token before the next step (streaming).
GenerateResult generate(const Model& m, std::vector<int> prompt, int max_new, const SamplingOptions& so,
                        const std::function<void(int)>& on_token = {}, const KVQuantOptions* kv = nullptr);

}  // namespace lmp

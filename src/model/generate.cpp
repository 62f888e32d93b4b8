#include "model/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/progress.h"
#include "model/forward.h"

namespace lmp {

int Sampler::sample(const float* logits, int vocab) {
  if (o_.temperature <= 0.f) return int(std::max_element(logits, logits + vocab) - logits);
  std::vector<int> idx(static_cast<size_t>(vocab));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  int keep = o_.top_k > 0 ? std::min(o_.top_k, vocab) : vocab;
  std::vector<double> p(static_cast<size_t>(keep));
  double mx = logits[idx[0]], sum = 0;
  for (int i = 0; i < keep; i++) sum += p[size_t(i)] = std::exp((logits[idx[size_t(i)]] - mx) / o_.temperature);
  // top-p: smallest prefix of the sorted distribution with mass ≥ top_p
  double acc = 0;
  int cut = keep;
  for (int i = 0; i < keep; i++) {
    acc += p[size_t(i)] / sum;
    if (acc >= o_.top_p) {
      cut = i + 1;
      break;
    }
  }
  std::discrete_distribution<int> d(p.begin(), p.begin() + cut);
  return idx[size_t(d(rng_))];
}

GenerateResult generate(const Model& m, std::vector<int> prompt, int max_new, const SamplingOptions& so,
                        const std::function<void(int)>& on_token, const KVQuantOptions* kv) {
  GenerateResult r;
  if (prompt.empty()) prompt.push_back(m.cfg.bos_id);
  int cap = std::min<int>(m.cfg.max_pos, int(prompt.size()) + max_new);
  cap = std::max(cap, int(prompt.size()));
  Forward fw(m);
  KVCache cache(m.cfg, cap, kv ? *kv : KVQuantOptions{});
  Sampler sampler(so);
  std::vector<float> logits(static_cast<size_t>(m.cfg.vocab));
  double t0 = now_seconds();
  fw.tokens(prompt.data(), int(prompt.size()), cache, logits.data(), /*last_only=*/true);
  r.prefill_s = now_seconds() - t0;
  t0 = now_seconds();
  for (int i = 0; i < max_new && cache.length() < cap; i++) {
    int next = sampler.sample(logits.data(), m.cfg.vocab);
    if (next == m.cfg.bos_id || next == m.cfg.eos_id) break;
    r.ids.push_back(next);
    if (on_token) on_token(next);
    if (cache.length() >= cap) break;
    fw.tokens(&next, 1, cache, logits.data(), true);
  }
  r.decode_s = now_seconds() - t0;
  return r;
}

}  // namespace lmp

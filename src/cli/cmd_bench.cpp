// lmpress bench --model DIR [--prefill 128,512] [--decode-ctx 128] [--decode-tokens 64] [--reps 3] [--warmup 0]
//               [--json]
// Prefill tokens/s (one sequence of N tokens from an empty cache), decode tokens/s (one token at a time
// after a context of decode-ctx tokens), peak RSS and model bytes. Best of --reps runs; --json also gives every
// run ("..._samples") and their median. --warmup N untimed runs of each first (llama-bench does one).
// decode_weight_bytes: the weight bytes one decoded token reads (every stored matrix and norm; the embedding
// only when it is the tied head), the numerator of a bandwidth-limit figure.
#include <algorithm>
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"

namespace lmp {

static std::vector<int> parse_int_list(const std::string& s, const char* opt) {
  std::vector<int> v;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    try {
      v.push_back(std::stoi(s.substr(pos, end - pos)));
    } catch (...) {
      fail("--{} '{}': want a comma-separated list of integers", opt, s);
    }
    pos = end + 1;
  }
  return v;
}

int bench_matvec(int argc, char** argv);

static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cmd_bench(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[2]) == "matvec") return bench_matvec(argc, argv);
  Args a(argc, argv, 2, {"json", "kv-pre-rope"});
  std::string dir = a.required("model");
  std::vector<int> prefill = parse_int_list(a.str("prefill", "128,512"), "prefill");
  int dctx = int(a.integer("decode-ctx", 128));
  int dtok = int(a.integer("decode-tokens", 64));
  int reps = int(a.integer("reps", 3));
  int warmup = int(a.integer("warmup", 0));
  KVQuantOptions kv = kv_options_from_args(a);
  bool json = a.flag("json");
  a.finish();
  check(reps >= 1 && dtok >= 1 && dctx >= 1, "bench: --reps, --decode-tokens and --decode-ctx must be ≥ 1");
  check(warmup >= 0, "bench: --warmup must be ≥ 0");
  double t_load = now_seconds();
  auto m = load_model(dir);
  t_load = now_seconds() - t_load;
  const ModelConfig& c = m->cfg;
  std::mt19937 rng(1234);
  auto random_ids = [&](int n) {
    std::vector<int> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = int(rng() % uint32_t(c.vocab));
    return ids;
  };
  Forward fw(*m);
  nlohmann::json pre = nlohmann::json::object(), pre_samples = nlohmann::json::object(),
                 pre_median = nlohmann::json::object();
  for (int n : prefill) {
    if (n > c.max_pos) {
      std::fprintf(stderr, "bench: skipping prefill %d > max_position_embeddings %d\n", n, c.max_pos);
      continue;
    }
    std::vector<int> ids = random_ids(n);
    std::vector<float> logits(static_cast<size_t>(c.vocab));
    std::vector<double> tps;
    for (int r = 0; r < warmup + reps; r++) {
      KVCache cache(c, n, kv);
      double t0 = now_seconds();
      fw.tokens(ids.data(), n, cache, logits.data(), true);
      if (r >= warmup) tps.push_back(double(n) / (now_seconds() - t0));
    }
    pre[std::to_string(n)] = *std::max_element(tps.begin(), tps.end());
    pre_samples[std::to_string(n)] = tps;
    pre_median[std::to_string(n)] = median(tps);
  }
  int ctx = std::min(dctx, c.max_pos - dtok);
  check(ctx >= 1, "bench: max_position_embeddings {} too small for --decode-tokens {}", c.max_pos, dtok);
  std::vector<int> ids = random_ids(ctx + dtok);
  std::vector<float> logits(static_cast<size_t>(c.vocab));
  std::vector<double> dec;
  size_t kv_bytes = 0;
  for (int r = 0; r < warmup + reps; r++) {
    KVCache cache(c, ctx + dtok, kv);
    fw.tokens(ids.data(), ctx, cache, logits.data(), true);
    double t0 = now_seconds();
    for (int i = 0; i < dtok; i++) fw.tokens(&ids[size_t(ctx + i)], 1, cache, logits.data(), true);
    if (r >= warmup) dec.push_back(double(dtok) / (now_seconds() - t0));
    kv_bytes = cache.bytes();
  }
  double decode_tps = *std::max_element(dec.begin(), dec.end());
  const size_t embed_bytes = m->cfg.tie_embeddings ? 0 : m->embed.size() * 4;  // read one row per token
  nlohmann::json j = {{"model", dir},
                      {"prefill_tokens_per_s", pre},
                      {"prefill_samples_tokens_per_s", pre_samples},
                      {"prefill_median_tokens_per_s", pre_median},
                      {"decode_tokens_per_s", decode_tps},
                      {"decode_samples_tokens_per_s", dec},
                      {"decode_median_tokens_per_s", median(dec)},
                      {"decode_weight_bytes", m->n_bytes() - embed_bytes},
                      {"decode_ctx", ctx},
                      {"bytes", m->n_bytes()},
                      {"params", m->n_params()},
                      {"linear_bits_per_weight", m->linear_bits_per_weight()},
                      {"peak_rss_bytes", peak_rss_bytes()},
                      {"load_s", t_load},
                      {"kv_bits", kv.bits}, {"kv_method", kv.method == KVMethod::Wkv ? "wkvquant" : "kivi"},
                      {"kv_cache_bytes", kv_bytes},
                      {"kv_bytes_per_token", double(kv_bytes) / (ctx + dtok)}};
  if (json) {
    print_json(j);
    return 0;
  }
  for (auto& [n, tps] : pre.items()) std::printf("prefill %5s tokens: %10.1f tokens/s\n", n.c_str(), tps.get<double>());
  std::printf("decode at ctx %d: %10.1f tokens/s\n", ctx, decode_tps);
  std::printf("model bytes %zu, projections %.3f bits/weight, peak RSS %.1f MiB\n", m->n_bytes(),
              m->linear_bits_per_weight(), double(peak_rss_bytes()) / (1 << 20));
  return 0;
}

}  // namespace lmp

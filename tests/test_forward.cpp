// The forward pass against independent computations: a naive double-precision Llama forward written here
// (random tiny checkpoints: GQA, tied/untied, Qwen2 biases, f16/bf16 storage, rope scaling), the float64
// reference logits of the real stories260K model, and KV-cache decode == full recompute.
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/mmap_file.h"
#include "io/checkpoint.h"
#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

namespace {

// ---- naive reference: straight from the HF modeling code, double everywhere ----
struct RefModel {
  ModelConfig c;
  std::map<std::string, std::vector<double>> w;
  explicit RefModel(const std::string& dir) {
    c = ModelConfig::from_file(dir + "/config.json");
    Checkpoint ck(dir);
    for (const auto& n : ck.names()) {
      auto f = ck.get(n).to_f32();
      w[n] = std::vector<double>(f.begin(), f.end());
    }
  }
  const std::vector<double>& W(const std::string& n) const { return w.at(n); }
  // y (T, out) = x (T, in) W^T (+ b)
  std::vector<double> linear(const std::vector<double>& x, int T, const std::string& name, int out, int in) const {
    const auto& m = W(name + ".weight");
    std::vector<double> y(size_t(T) * out, 0.0);
    for (int t = 0; t < T; t++)
      for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++) s += x[size_t(t) * in + i] * m[size_t(o) * in + i];
        y[size_t(t) * out + o] = s;
      }
    if (w.count(name + ".bias"))
      for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) y[size_t(t) * out + o] += W(name + ".bias")[size_t(o)];
    return y;
  }
  std::vector<double> rms(const std::vector<double>& x, int T, const std::string& name) const {
    const int C = c.hidden;
    std::vector<double> y(x.size());
    for (int t = 0; t < T; t++) {
      double ss = 0;
      for (int i = 0; i < C; i++) ss += x[size_t(t) * C + i] * x[size_t(t) * C + i];
      double r = 1.0 / std::sqrt(ss / C + c.rms_eps);
      for (int i = 0; i < C; i++) y[size_t(t) * C + i] = x[size_t(t) * C + i] * r * W(name)[size_t(i)];
    }
    return y;
  }
  double inv_freq(int i) const {
    double f = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / c.head_dim);
    if (c.rope_scaling == RopeScaling::Linear) f /= c.rope_factor;
    if (c.rope_scaling == RopeScaling::Llama3) {  // transformers' _compute_llama3_parameters
      double lw = c.rope_orig_max_pos / c.rope_low_freq_factor, hw = c.rope_orig_max_pos / c.rope_high_freq_factor;
      double wl = 2 * M_PI / f;
      if (wl > lw) f = f / c.rope_factor;
      else if (wl >= hw) {
        double sm = (c.rope_orig_max_pos / wl - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - sm) * f / c.rope_factor + sm * f;
      }
    }
    return f;
  }
  void rope(std::vector<double>& x, int T, int heads) const {
    const int hs = c.head_dim, h2 = hs / 2;
    for (int t = 0; t < T; t++)
      for (int h = 0; h < heads; h++) {
        double* v = &x[(size_t(t) * heads + h) * hs];
        std::vector<double> r(v, v + hs);
        for (int i = 0; i < hs; i++) {
          double a = t * inv_freq(i % h2);
          double rot = i < h2 ? -r[size_t(i + h2)] : r[size_t(i - h2)];
          v[i] = r[size_t(i)] * std::cos(a) + rot * std::sin(a);
        }
      }
  }
  std::vector<double> forward(const std::vector<int>& ids) const {
    const int T = int(ids.size()), C = c.hidden, hs = c.head_dim, H = c.n_heads, KV = c.n_kv_heads, F = c.intermediate;
    std::vector<double> x(size_t(T) * C);
    for (int t = 0; t < T; t++)
      for (int i = 0; i < C; i++) x[size_t(t) * C + i] = W("model.embed_tokens.weight")[size_t(ids[size_t(t)]) * C + i];
    for (int l = 0; l < c.n_layers; l++) {
      std::string p = "model.layers." + std::to_string(l) + ".";
      auto h = rms(x, T, p + "input_layernorm.weight");
      auto q = linear(h, T, p + "self_attn.q_proj", H * hs, C);
      auto k = linear(h, T, p + "self_attn.k_proj", KV * hs, C);
      auto v = linear(h, T, p + "self_attn.v_proj", KV * hs, C);
      rope(q, T, H);
      rope(k, T, KV);
      std::vector<double> o(size_t(T) * H * hs, 0.0);
      for (int hh = 0; hh < H; hh++) {
        int g = hh / (H / KV);
        for (int t = 0; t < T; t++) {
          std::vector<double> s(size_t(t) + 1);
          double mx = -1e300, sum = 0;
          for (int j = 0; j <= t; j++) {
            double d = 0;
            for (int i = 0; i < hs; i++) d += q[(size_t(t) * H + hh) * hs + i] * k[(size_t(j) * KV + g) * hs + i];
            s[size_t(j)] = d / std::sqrt(double(hs));
            mx = std::max(mx, s[size_t(j)]);
          }
          for (auto& e : s) sum += (e = std::exp(e - mx));
          for (int j = 0; j <= t; j++)
            for (int i = 0; i < hs; i++) o[(size_t(t) * H + hh) * hs + i] += s[size_t(j)] / sum * v[(size_t(j) * KV + g) * hs + i];
        }
      }
      auto ao = linear(o, T, p + "self_attn.o_proj", C, H * hs);
      for (size_t i = 0; i < x.size(); i++) x[i] += ao[i];
      h = rms(x, T, p + "post_attention_layernorm.weight");
      auto gg = linear(h, T, p + "mlp.gate_proj", F, C);
      auto uu = linear(h, T, p + "mlp.up_proj", F, C);
      for (size_t i = 0; i < gg.size(); i++) gg[i] = gg[i] / (1 + std::exp(-gg[i])) * uu[i];
      auto d = linear(gg, T, p + "mlp.down_proj", C, F);
      for (size_t i = 0; i < x.size(); i++) x[i] += d[i];
    }
    auto h = rms(x, T, "model.norm.weight");
    std::string head = w.count("lm_head.weight") ? "lm_head" : "model.embed_tokens";
    return linear(h, T, head, c.vocab, C);
  }
};

std::vector<int> test_ids(int n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = int(rng() % uint32_t(vocab));
  return ids;
}

void expect_matches_reference(const test::TinySpec& spec, double tol) {
  std::string dir = test::temp_dir("fwd");
  test::write_tiny_model(dir, spec);
  auto m = load_model(dir);
  RefModel ref(dir);
  const int T = 19;
  auto ids = test_ids(T, spec.vocab, spec.seed);
  std::vector<float> logits(size_t(T) * spec.vocab);
  Forward fw(*m);
  KVCache cache(m->cfg, T);
  fw.tokens(ids.data(), T, cache, logits.data());
  auto want = ref.forward(ids);
  std::vector<float> wantf(want.begin(), want.end());
  EXPECT_LE(test::max_rel_diff(logits.data(), wantf.data(), wantf.size()), tol) << spec.arch << " " << spec.dtype;
}

}  // namespace

TEST(Forward, MatchesNaiveDoubleReferenceGQAUntied) { expect_matches_reference({}, 1e-4); }

TEST(Forward, MatchesNaiveDoubleReferenceTied) {
  test::TinySpec s;
  s.tied = true;
  s.seed = 2;
  expect_matches_reference(s, 1e-4);
}

TEST(Forward, MatchesNaiveDoubleReferenceQwen2Biases) {
  test::TinySpec s;
  s.arch = "Qwen2ForCausalLM";
  s.kv_heads = 1;
  s.seed = 3;
  expect_matches_reference(s, 1e-4);
}

TEST(Forward, MatchesNaiveDoubleReferenceF16AndBF16Storage) {
  for (const char* dt : {"F16", "BF16"}) {
    test::TinySpec s;
    s.dtype = dt;
    s.seed = 4;
    expect_matches_reference(s, 1e-4);  // the reference reads the same rounded values
  }
}

TEST(Forward, MatchesNaiveDoubleReferenceRopeScaling) {
  test::TinySpec s;
  s.seed = 5;
  s.head_dim = 16;
  s.heads = 2;
  s.kv_heads = 2;
  s.rope_scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                    {"original_max_position_embeddings", 16}};
  expect_matches_reference(s, 1e-4);
  s.rope_scaling = {{"type", "linear"}, {"factor", 2.0}};
  expect_matches_reference(s, 1e-4);
}

TEST(Forward, DecodeWithCacheEqualsFullRecompute) {
  std::string dir = test::temp_dir("decode");
  test::TinySpec s;
  s.seed = 6;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  const int T = 24, V = s.vocab;
  auto ids = test_ids(T, V, 7);
  Forward fw(*m);
  KVCache full(m->cfg, T);
  std::vector<float> all(size_t(T) * V), step(static_cast<size_t>(V));
  fw.tokens(ids.data(), T, full, all.data());
  // Prefill 10 tokens in one batch, then one at a time.
  KVCache inc(m->cfg, T);
  std::vector<float> pre(size_t(10) * V);
  fw.tokens(ids.data(), 10, inc, pre.data());
  EXPECT_LE(test::max_rel_diff(pre.data(), all.data(), pre.size()), 1e-5);
  for (int t = 10; t < T; t++) {
    fw.tokens(&ids[size_t(t)], 1, inc, step.data(), true);
    EXPECT_LE(test::max_rel_diff(step.data(), all.data() + size_t(t) * V, size_t(V)), 1e-5) << "position " << t;
  }
}

TEST(Forward, Stories260KReferenceLogits) {
  std::string dir = LMP_REQUIRE_SHARED("models/stories260K");
  auto j = nlohmann::json::parse(read_file(dir + "/reference/logits.json"));
  auto ids = j["ids"].get<std::vector<int>>();
  auto want = j["logits"].get<std::vector<std::vector<double>>>();
  auto m = load_model(dir);
  const int T = int(ids.size()), V = m->cfg.vocab;
  Forward fw(*m);
  KVCache cache(m->cfg, T);
  std::vector<float> logits(size_t(T) * V);
  fw.tokens(ids.data(), T, cache, logits.data());
  double worst = 0;
  for (int t = 0; t < T; t++)
    for (int v = 0; v < V; v++) worst = std::max(worst, std::fabs(logits[size_t(t) * V + v] - want[size_t(t)][size_t(v)]));
  EXPECT_LE(worst, 1e-4) << "max |Δlogit| vs the float64 reference";
  auto argmax = j["argmax"].get<std::vector<int>>();
  for (int t = 0; t < T; t++) {
    const float* row = logits.data() + size_t(t) * V;
    EXPECT_EQ(int(std::max_element(row, row + V) - row), argmax[size_t(t)]);
  }
}

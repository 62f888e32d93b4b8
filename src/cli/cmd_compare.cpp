// lmpress compare --model A --model-b B [--prompts FILE] [--max-new-tokens N] [--json]
// Greedy outputs of two models (typically an original and its compressed copy) side by side, and along A's
// greedy path the per-token KL(A‖B) = Σ_v p_A(v) (log p_A(v) − log p_B(v)) of the next-token distributions,
// plus how often B's argmax agrees with A's. Prompts: one per line of FILE (empty lines skipped), or a few
// built-in TinyStories-style openings. Both models must share the vocabulary (A's tokenizer is used).
#include <cmath>
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "model/forward.h"
#include "model/generate.h"

namespace lmp {

namespace {

const char* const kDefaultPrompts[] = {"Once upon a time, there was a little", "Lily and her mom went to the park.",
                                       "Tom had a big red ball. One day,", "The sun was shining and the birds"};

// log softmax of logits (V) in double.
std::vector<double> log_softmax(const float* logits, int V) {
  double mx = logits[0];
  for (int i = 1; i < V; i++) mx = std::max(mx, double(logits[i]));
  double z = 0;
  for (int i = 0; i < V; i++) z += std::exp(double(logits[i]) - mx);
  double lz = mx + std::log(z);
  std::vector<double> out(static_cast<size_t>(V));
  for (int i = 0; i < V; i++) out[size_t(i)] = double(logits[i]) - lz;
  return out;
}

double kl(const std::vector<double>& la, const std::vector<double>& lb) {
  double s = 0;
  for (size_t i = 0; i < la.size(); i++) s += std::exp(la[i]) * (la[i] - lb[i]);
  return std::max(0.0, s);
}

}  // namespace

int cmd_compare(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  std::string da = a.required("model"), db = a.required("model-b");
  auto prompts_file = a.opt("prompts");
  int max_new = int(a.integer("max-new-tokens", 48));
  bool json = a.flag("json");
  a.finish();
  check(max_new >= 1, "--max-new-tokens {}: must be ≥ 1", max_new);
  std::vector<std::string> prompts;
  if (prompts_file) {
    std::string text = read_file(*prompts_file), line;
    for (size_t pos = 0; pos <= text.size();) {
      size_t end = std::min(text.find('\n', pos), text.size());
      line = text.substr(pos, end - pos);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) prompts.push_back(line);
      pos = end + 1;
    }
    check(!prompts.empty(), "{}: no prompts (one per line)", *prompts_file);
  } else {
    prompts.assign(std::begin(kDefaultPrompts), std::end(kDefaultPrompts));
  }
  auto ma = load_model(da), mb = load_model(db);
  const int V = ma->cfg.vocab;
  check(mb->cfg.vocab == V, "--model-b {}: vocabulary of {} tokens, --model has {}: KL needs the same vocabulary", db,
        mb->cfg.vocab, V);
  const Tokenizer& tok = ma->tokenizer();
  nlohmann::json rows = nlohmann::json::array();
  double kl_total = 0;
  long steps_total = 0, agree_total = 0;
  for (const auto& p : prompts) {
    std::vector<int> ids = tok.encode(p, true);
    int cap = std::min(ma->cfg.max_pos, mb->cfg.max_pos);
    check(int(ids.size()) < cap, "prompt '{}' has {} tokens, the models have {} positions", p, ids.size(), cap);
    int n_new = std::min(max_new, cap - int(ids.size()));
    // A's greedy path, B fed the same tokens.
    Forward fa(*ma), fb(*mb);
    KVCache ca(ma->cfg, cap), cb(mb->cfg, cap);
    std::vector<float> la(static_cast<size_t>(V)), lb(static_cast<size_t>(V));
    fa.tokens(ids.data(), int(ids.size()), ca, la.data(), true);
    fb.tokens(ids.data(), int(ids.size()), cb, lb.data(), true);
    std::vector<int> path;
    nlohmann::json kls = nlohmann::json::array();
    long agree = 0;
    double ksum = 0;
    for (int s = 0; s < n_new; s++) {
      auto pa = log_softmax(la.data(), V), pb = log_softmax(lb.data(), V);
      double k = kl(pa, pb);
      kls.push_back(k);
      ksum += k;
      int ta = int(std::max_element(la.begin(), la.end()) - la.begin());
      int tb = int(std::max_element(lb.begin(), lb.end()) - lb.begin());
      agree += ta == tb;
      if (ta == tok.eos_id() || ta == tok.bos_id()) break;
      path.push_back(ta);
      if (s + 1 == n_new) break;
      fa.tokens(&ta, 1, ca, la.data(), true);
      fb.tokens(&ta, 1, cb, lb.data(), true);
    }
    GenerateResult gb = generate(*mb, ids, n_new, SamplingOptions{});
    long steps = long(kls.size());
    nlohmann::json r = {{"prompt", p},
                        {"a", tok.decode(path)},
                        {"b", tok.decode(gb.ids)},
                        {"same_text", tok.decode(path) == tok.decode(gb.ids)},
                        {"kl_mean", steps ? ksum / double(steps) : 0.0},
                        {"kl_max", steps ? *std::max_element(kls.begin(), kls.end()) : nlohmann::json(0.0)},
                        {"top1_agreement", steps ? double(agree) / double(steps) : 0.0},
                        {"kl_per_token", kls}};
    rows.push_back(r);
    kl_total += ksum;
    steps_total += steps;
    agree_total += agree;
  }
  nlohmann::json j = {{"model", da},
                      {"model_b", db},
                      {"max_new_tokens", max_new},
                      {"kl_mean", steps_total ? kl_total / double(steps_total) : 0.0},
                      {"top1_agreement", steps_total ? double(agree_total) / double(steps_total) : 0.0},
                      {"prompts", rows}};
  if (json) {
    print_json(j);
    return 0;
  }
  for (const auto& r : rows) {
    std::printf("prompt: %s\n  A: %s\n  B: %s\n  KL(A||B) mean %.4f max %.4f nats, top-1 agreement %.1f%%%s\n\n",
                r["prompt"].get<std::string>().c_str(), r["a"].get<std::string>().c_str(),
                r["b"].get<std::string>().c_str(), r["kl_mean"].get<double>(), r["kl_max"].get<double>(),
                100 * r["top1_agreement"].get<double>(), r["same_text"].get<bool>() ? "  (identical text)" : "");
  }
  std::printf("overall: KL(A||B) mean %.4f nats/token over %ld tokens, top-1 agreement %.1f%%\n",
              j["kl_mean"].get<double>(), steps_total, 100 * j["top1_agreement"].get<double>());
  return 0;
}

}  // namespace lmp

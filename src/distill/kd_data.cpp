#include "distill/kd_data.h"

#include <cmath>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/forward.h"
#include "model/kv_cache.h"

namespace lmp::distill {

void save_kd_set(const KdSet& s, const std::string& path) {
  std::string out = nlohmann::json{{"recipe", s.recipe}, {"stats", s.stats}}.dump() + "\n";
  for (const KdExample& e : s.examples) {
    nlohmann::json t = nlohmann::json::array();
    for (const KdSegment& g : e.targets) t.push_back({{"text", g.text}, {"weight", g.weight}, {"role", g.role}});
    out += nlohmann::json{{"prompt", e.prompt}, {"targets", t}, {"meta", e.meta}}.dump() + "\n";
  }
  write_file_atomic(path, out.data(), out.size());
}

static KdExample parse_example(const nlohmann::json& j, const std::string& where) {
  check(j.is_object() && j.contains("prompt") && j["prompt"].is_string() && j.contains("targets") &&
            j["targets"].is_array(),
        "{}: an example needs a string 'prompt' and an array 'targets'", where);
  KdExample e;
  e.prompt = j["prompt"].get<std::string>();
  for (const auto& t : j["targets"]) {
    check(t.is_object() && t.contains("text") && t["text"].is_string(), "{}: every target needs a string 'text'",
          where);
    KdSegment g;
    g.text = t["text"].get<std::string>();
    g.weight = t.value("weight", 1.0f);
    g.role = t.value("role", std::string("response"));
    check(std::isfinite(g.weight) && g.weight >= 0, "{}: target weight {} must be finite and >= 0", where, g.weight);
    e.targets.push_back(std::move(g));
  }
  if (j.contains("meta")) e.meta = j["meta"];
  return e;
}

KdSet load_kd_set(const std::string& path) {
  const std::string text = read_file(path);
  KdSet s;
  size_t a = 0;
  int line = 0;
  bool header = true;
  while (a < text.size()) {
    size_t b = text.find('\n', a);
    if (b == std::string::npos) b = text.size();
    const std::string ln = text.substr(a, b - a);
    a = b + 1;
    line++;
    if (ln.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ln);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({})", where, e.what());
    }
    if (header) {
      check(j.is_object() && j.contains("recipe"), "{}: the first line must be the header {{\"recipe\": ...}} of an "
            "lmpress kd-data file", where);
      s.recipe = j["recipe"].get<std::string>();
      if (j.contains("stats")) s.stats = j["stats"];
      header = false;
      continue;
    }
    s.examples.push_back(parse_example(j, where));
  }
  check(!header, "{}: empty file (want an lmpress kd-data JSONL file)", path);
  check(!s.examples.empty(), "{}: no examples", path);
  return s;
}

// Ids of prefix + more where prefix encodes to `ids` (a tokenizer may merge across the boundary: the ids shared
// with `ids` are kept, the rest are the new segment's). Encoding the text as one string keeps a target's first
// word the token the model itself would generate after the prompt (encoding a segment alone would give
// SentencePiece's word-initial "▁" piece an extra time).
static size_t extend_ids(const Tokenizer& tok, const std::string& text, std::vector<int>& ids) {
  std::vector<int> all = tok.encode(text, true);
  size_t common = 0;
  while (common < ids.size() && common < all.size() && ids[common] == all[common]) common++;
  ids = std::move(all);
  return common;
}

train::TokenStream kd_stream(const Tokenizer& tok, const KdSet& s) {
  train::TokenStream st;
  for (const KdExample& e : s.examples) {
    std::string text = e.prompt;
    std::vector<int> ids = tok.encode(text, true);
    std::vector<float> w(ids.size(), 0.0f);
    float last = 0;
    for (const KdSegment& g : e.targets) {
      text += g.text;
      const size_t keep = extend_ids(tok, text, ids);
      w.resize(keep);
      w.resize(ids.size(), g.weight);
      last = g.weight;
    }
    st.ids.insert(st.ids.end(), ids.begin(), ids.end());
    st.weight.insert(st.weight.end(), w.begin(), w.end());
    if (tok.eos_id() >= 0) st.ids.push_back(tok.eos_id()), st.weight.push_back(last);
  }
  check(!st.ids.empty(), "kd data set '{}' has no tokens", s.recipe);
  return st;
}

std::vector<std::string> read_lines(const std::string& path) {
  const std::string text = read_file(path);
  std::vector<std::string> out;
  size_t a = 0;
  while (a < text.size()) {
    size_t b = text.find('\n', a);
    if (b == std::string::npos) b = text.size();
    std::string ln = text.substr(a, b - a);
    a = b + 1;
    if (!ln.empty() && ln.back() == '\r') ln.pop_back();
    if (ln.find_first_not_of(" \t") != std::string::npos) out.push_back(std::move(ln));
  }
  check(!out.empty(), "{}: no non-empty lines", path);
  return out;
}

std::string complete(const Model& m, const std::string& prompt, int max_new, const SamplingOptions& so,
                     const std::string& stop) {
  const Tokenizer& tok = m.tokenizer();
  // Generation runs to max_new (generate has no early exit); the stop string cuts the decoded text afterwards.
  // The continuation is decoded after the prompt, so it keeps its leading space ("A:" → " Lily ..."): decoders
  // drop a text's initial space, and prompt + completion must read as the text the model produced.
  std::vector<int> ids = tok.encode(prompt, true);
  const std::string head = tok.decode(ids);
  const std::vector<int> gen = generate(m, ids, max_new, so).ids;
  ids.insert(ids.end(), gen.begin(), gen.end());
  std::string text = tok.decode(ids);
  text = text.compare(0, head.size(), head) == 0 ? text.substr(head.size()) : tok.decode(gen);
  if (!stop.empty()) {
    const size_t k = text.find(stop);
    if (k != std::string::npos) text.resize(k);
  }
  return text;
}

Score score(const Model& m, const std::string& prompt, const std::string& continuation) {
  const Tokenizer& tok = m.tokenizer();
  std::vector<int> ids = tok.encode(prompt, true);
  const int np = int(extend_ids(tok, prompt + continuation, ids));  // continuation tokens: ids[np..n)
  const int n = int(ids.size());
  Score s;
  if (n == np) return s;
  const int ctx = std::min(n, m.cfg.max_pos);
  const int off = n - ctx;  // keep the most recent max_pos tokens when the example is longer
  KVCache cache(m.cfg, ctx);
  Forward f(m);
  const int V = m.cfg.vocab;
  std::vector<float> logits(size_t(ctx) * V);
  f.tokens(ids.data() + off, ctx, cache, logits.data());
  for (int i = std::max(np, off + 1); i < n; i++) {
    const float* z = logits.data() + size_t(i - 1 - off) * V;
    double mx = z[0];
    for (int j = 1; j < V; j++) mx = std::max(mx, double(z[j]));
    double se = 0;
    for (int j = 0; j < V; j++) se += std::exp(double(z[j]) - mx);
    s.sum_logp += double(z[ids[size_t(i)]]) - mx - std::log(se);
    s.ntokens++;
  }
  return s;
}

}  // namespace lmp::distill

// LaMini-LM (Wu et al. 2023, "LaMini-LM: A Diverse Herd of Distilled Models from Large-Scale Instructions",
// arXiv 2304.14402), as a black-box recipe: the point is a LARGE and DIVERSE instruction set written by the
// teacher, then the teacher's responses. Two generators, as in the paper: example-guided (k pool instructions as
// examples, the teacher samples the next) and topic-guided (the same, but the new instruction must start with a
// topic: here the capitalised vocabulary of the pool — the names and places of the stories — standing in for the
// paper's Wikipedia categories). Only malformed and exact-duplicate instructions are dropped (no overlap filter:
// scale over purity). What is stored: seed and generated examples (meta.source "seed"/"example"/"topic",
// meta.topic); stats report distinct-1/2 of the seed and of all instructions, so the diversity gain is visible.
// Settings: new (instructions to generate, default 2 × the pool), topic (fraction topic-guided, 0.5), k (3),
// temp (1.0).
#include <algorithm>
#include <cctype>
#include <map>
#include <random>
#include <set>

#include "distill/inst_recipes.h"

namespace lmp::distill {

std::vector<std::string> lamini_topics(const std::vector<InstItem>& pool) {
  static const std::set<std::string> openers = {"How", "Then", "The", "Once", "One", "She", "He", "They", "It",
                                                "A", "Q", "What", "Who", "When", "Where", "Why", "There", "I"};
  std::map<std::string, int> freq;
  for (const auto& it : pool) {
    std::string w;
    for (size_t i = 0; i <= it.instruction.size(); i++) {
      const char c = i < it.instruction.size() ? it.instruction[i] : ' ';
      if (std::isalpha(static_cast<unsigned char>(c))) {
        w += c;
        continue;
      }
      if (w.size() > 1 && std::isupper(static_cast<unsigned char>(w[0])) && !openers.count(w)) freq[w]++;
      w.clear();
    }
  }
  std::vector<std::pair<std::string, int>> v(freq.begin(), freq.end());
  std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> out;
  for (const auto& [w, n] : v) out.push_back(w);
  return out;
}

KdResult lamini_recipe(const KdContext& ctx) {
  std::vector<InstItem> pool = instruction_pool(ctx);
  const long want = ctx.opt.integer("new", 2 * long(pool.size()));
  const double topic_frac = ctx.opt.real("topic", 0.5);
  const int k = int(ctx.opt.integer("k", 3));
  const float temp = float(ctx.opt.real("temp", 1.0));
  check(want >= 0 && k >= 1 && temp > 0 && topic_frac >= 0 && topic_frac <= 1,
        "lamini: want new >= 0, k >= 1, temp > 0, 0 <= topic <= 1");

  size_t max_words = 0;
  std::vector<std::string> seed_instr;
  for (auto& it : pool) {
    it.response = teacher_answer(ctx, it);
    max_words = std::max(max_words, words(it.instruction).size());
    seed_instr.push_back(it.instruction);
  }
  const std::vector<std::string> topics = lamini_topics(pool);
  KdResult r;
  for (const auto& it : pool) r.data.examples.push_back(inst_example(it, "seed"));
  std::set<std::string> seen(seed_instr.begin(), seed_instr.end());
  std::vector<std::string> all = seed_instr;
  const size_t n_seed = pool.size();
  std::mt19937_64 rng(ctx.seed * 131 + 9);
  long by_topic = 0, by_example = 0, dropped = 0;
  for (long t = 0; t < want; t++) {
    bool task = false;
    const auto ex = pick_examples(pool, {}, k, rng, &task);
    const bool topical = !topics.empty() && double(rng() % 1000) < 1000 * topic_frac;
    const std::string topic = topical ? topics[rng() % topics.size()] : "";
    const std::string instr = sample_instruction(ctx, generation_prompt(ex, task, topic), topic,
                                                 {temp, 0, 1.f, ctx.seed * 7919 + uint64_t(t)});
    if (!well_formed(instr, task, max_words) || !seen.insert(instr).second) {
      dropped++;
      continue;
    }
    InstItem it{instr, task, ""};
    it.response = teacher_answer(ctx, it);
    KdExample e = inst_example(it, topical ? "topic" : "example");
    if (topical) e.meta["topic"] = topic;
    r.data.examples.push_back(std::move(e));
    all.push_back(instr);
    (topical ? by_topic : by_example)++;
  }
  r.data.stats = {{"seeds", n_seed}, {"generated", by_topic + by_example}, {"topic_guided", by_topic},
                  {"example_guided", by_example}, {"dropped", dropped}, {"topics", topics.size()},
                  {"distinct1_seed", distinct_n(seed_instr, 1)}, {"distinct2_seed", distinct_n(seed_instr, 2)},
                  {"distinct1_all", distinct_n(all, 1)}, {"distinct2_all", distinct_n(all, 2)},
                  {"teacher_calls", size_t(want) + n_seed + size_t(by_topic + by_example)}};
  kd_log(ctx, "lamini", fmt::format("{} seeds + {} generated ({} topic-guided), {} dropped; distinct-2 {:.3f} -> {:.3f}",
                                    n_seed, by_topic + by_example, by_topic, dropped, distinct_n(seed_instr, 2),
                                    distinct_n(all, 2)));
  return r;
}

}  // namespace lmp::distill

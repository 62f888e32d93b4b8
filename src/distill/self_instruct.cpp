// Self-Instruct (Wang et al. 2023, "Self-Instruct: Aligning Language Models with Self-Generated Instructions",
// arXiv 2212.10560), as a black-box distillation recipe: the teacher grows the instruction pool itself. Each step
// shows the teacher k instructions drawn from the pool (in its own answered "Q: ...\nA: ..." format for task
// questions, one per line for free-form prompts) and samples the next one; a new instruction is kept only if it
// is well formed (long enough, a question for task pools) and its ROUGE-L against every instruction already in
// the pool (seeds and earlier kept ones) is below the threshold (0.7 in the paper), so near-duplicates never
// enter. The teacher then answers every pool instruction greedily and the student trains on all of them.
// What is stored: the seed and generated examples (meta.source "seed"/"generated", meta.rouge the new one's
// highest overlap); stats count tries, kept, filtered as malformed and as duplicates (the first 50 near-duplicates
// listed with their overlap).
// Settings: new (instructions to add, default the pool size), rouge (0.7), k (examples per prompt, 3),
// temp (sampling temperature, 1.0), tries (most samples drawn, default 4 × new).
#include <algorithm>
#include <random>

#include "distill/inst_recipes.h"

namespace lmp::distill {

KdResult self_instruct_recipe(const KdContext& ctx) {
  std::vector<InstItem> pool = instruction_pool(ctx);
  const long want = ctx.opt.integer("new", long(pool.size()));
  const double thr = ctx.opt.real("rouge", 0.7);
  const int k = int(ctx.opt.integer("k", 3));
  const float temp = float(ctx.opt.real("temp", 1.0));
  const long tries = ctx.opt.integer("tries", 4 * want);
  check(want >= 0 && k >= 1 && temp > 0 && tries >= 0, "self_instruct: want new >= 0, k >= 1, temp > 0, tries >= 0");

  size_t max_words = 0;
  for (auto& it : pool) {
    it.response = teacher_answer(ctx, it);
    max_words = std::max(max_words, words(it.instruction).size());
  }
  KdResult r;
  for (const auto& it : pool) r.data.examples.push_back(inst_example(it, "seed"));
  const size_t n_seed = pool.size();
  std::mt19937_64 rng(ctx.seed * 31 + 5);
  long kept = 0, malformed = 0, dup = 0, t = 0;
  nlohmann::json rejected = nlohmann::json::array();  // the first near-duplicates, for inspection
  for (; t < tries && kept < want; t++) {
    bool task = false;
    const auto ex = pick_examples(pool, {}, k, rng, &task);
    const std::string instr =
        sample_instruction(ctx, generation_prompt(ex, task, ""), "", {temp, 0, 1.f, ctx.seed * 1000003 + uint64_t(t)});
    if (!well_formed(instr, task, max_words)) {
      malformed++;
      continue;
    }
    const double overlap = max_rouge(instr, pool);
    if (overlap >= thr) {
      if (rejected.size() < 50) rejected.push_back({{"text", instr}, {"rouge", overlap}, {"kept_before", kept}});
      dup++;
      continue;
    }
    InstItem it{instr, task, ""};
    it.response = teacher_answer(ctx, it);
    pool.push_back(it);
    KdExample e = inst_example(it, "generated");
    e.meta["rouge"] = overlap;
    r.data.examples.push_back(std::move(e));
    kept++;
  }
  r.data.stats = {{"seeds", n_seed}, {"tries", t}, {"kept", kept}, {"malformed", malformed}, {"duplicates", dup},
                  {"rouge_threshold", thr}, {"rejected", rejected}, {"teacher_calls", size_t(t) + n_seed + size_t(kept)}};
  kd_log(ctx, "self_instruct", fmt::format("{} seeds, {} tries: kept {}, {} malformed, {} near-duplicates", n_seed, t,
                                           kept, malformed, dup));
  return r;
}

}  // namespace lmp::distill

// Lion (Jiang et al. 2023, "Lion: Adversarial Distillation of Proprietary Large Language Models",
// arXiv 2305.12870): black-box distillation as rounds of
//   imitation      the student is fine-tuned (ctx.finetune) on the teacher's answers to the instruction pool;
//   discrimination the teacher, as referee, judges the student's answer against its own on every pool
//                  instruction; the "hard" instructions are those with the largest gap;
//   generation     the teacher writes new instructions in the style of the hard ones (k hard examples in the
//                  prompt), filtered like Self-Instruct (well formed, ROUGE-L < threshold against the pool), answers
//                  them, and they join the pool for the next imitation.
// The paper's referee is ChatGPT scoring both answers; here the referee is the teacher's own likelihood: the gap
// is its mean token log-probability of its answer minus that of the student's (lion_gap). Imitation continues
// from the previous round's student, so R rounds train R × --steps steps. The trained student is returned.
// What is stored: the final pool's examples (meta.source "seed"/"round<r>", meta.gap for judged ones); stats
// record each round's mean gap, the number of hard instructions and of new ones kept.
// Settings: rounds (2), hard (fraction of the pool judged hard, 0.5), new (instructions per round, default half
// the pool), k (3), temp (1.0), rouge (0.7).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "distill/inst_recipes.h"

namespace lmp::distill {

double lion_gap(const Model& referee, const std::string& prompt, const std::string& teacher_resp,
                const std::string& student_resp) {
  const Score t = score(referee, prompt, teacher_resp), s = score(referee, prompt, student_resp);
  return (t.ntokens ? t.mean() : -100.0) - (s.ntokens ? s.mean() : -100.0);
}

std::vector<size_t> lion_hard(const std::vector<double>& gaps, double frac) {
  std::vector<size_t> idx(gaps.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return gaps[a] > gaps[b]; });
  idx.resize(std::min(gaps.size(), size_t(std::ceil(frac * double(gaps.size())))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

namespace {

KdSet pool_set(const std::vector<InstItem>& pool, const std::vector<std::string>& source) {
  KdSet s;
  s.recipe = "lion";
  for (size_t i = 0; i < pool.size(); i++) s.examples.push_back(inst_example(pool[i], source[i]));
  return s;
}

}  // namespace

KdResult lion_recipe(const KdContext& ctx) {
  std::vector<InstItem> pool = instruction_pool(ctx);
  const int rounds = int(ctx.opt.integer("rounds", 2));
  const double hard_frac = ctx.opt.real("hard", 0.5);
  const long per_round = ctx.opt.integer("new", long(pool.size() / 2));
  const int k = int(ctx.opt.integer("k", 3));
  const float temp = float(ctx.opt.real("temp", 1.0));
  const double thr = ctx.opt.real("rouge", 0.7);
  check(rounds >= 1 && hard_frac > 0 && hard_frac <= 1 && per_round >= 0 && k >= 1 && temp > 0,
        "lion: want rounds >= 1, 0 < hard <= 1, new >= 0, k >= 1, temp > 0");
  check(bool(ctx.finetune), "lion trains the student between rounds: it needs the trainer (run it from `train distill`)");

  size_t max_words = 0, calls = 0;
  for (auto& it : pool) {
    it.response = teacher_answer(ctx, it);
    max_words = std::max(max_words, words(it.instruction).size());
    calls++;
  }
  std::vector<std::string> source(pool.size(), "seed");
  std::vector<double> gap_of(pool.size(), std::nan(""));
  std::unique_ptr<Model> student;
  nlohmann::json round_stats = nlohmann::json::array();
  std::mt19937_64 rng(ctx.seed * 17 + 3);
  for (int r = 0; r < rounds; r++) {
    student = ctx.finetune(student ? *student : *ctx.student, pool_set(pool, source));  // imitation
    if (r + 1 == rounds) break;
    // discrimination: the teacher referees the student's answer against its own
    std::vector<double> gaps(pool.size());
    double mean_gap = 0;
    for (size_t i = 0; i < pool.size(); i++) {
      const std::string s = complete(*student, pool[i].prompt(), ctx.max_new, {}, pool[i].task ? "\n\n" : "");
      gaps[i] = gap_of[i] = lion_gap(*ctx.teacher, pool[i].prompt(), pool[i].response, s);
      mean_gap += gaps[i] / double(pool.size());
    }
    const std::vector<size_t> hard = lion_hard(gaps, hard_frac);
    // generation: new instructions in the style of the hard ones
    const size_t n_before = pool.size();
    long kept = 0, filtered = 0;
    for (long t = 0; t < 4 * per_round && kept < per_round; t++) {
      bool task = false;
      const auto ex = pick_examples(pool, hard, k, rng, &task);
      const std::string instr = sample_instruction(ctx, generation_prompt(ex, task, ""), "",
                                                   {temp, 0, 1.f, ctx.seed * 104729 + uint64_t(r) * 7777 + uint64_t(t)});
      calls++;
      if (!well_formed(instr, task, max_words) || max_rouge(instr, pool) >= thr) {
        filtered++;
        continue;
      }
      InstItem it{instr, task, ""};
      it.response = teacher_answer(ctx, it);
      calls++;
      pool.push_back(it);
      source.push_back(fmt::format("round{}", r + 1));
      gap_of.push_back(std::nan(""));
      kept++;
    }
    round_stats.push_back({{"round", r + 1}, {"judged", n_before}, {"mean_gap", mean_gap}, {"hard", hard.size()},
                           {"hard_indices", hard}, {"new_kept", kept}, {"new_filtered", filtered}});
    kd_log(ctx, "lion", fmt::format("round {}: mean gap {:.3f} over {}, {} hard, {} new instructions ({} filtered)",
                                    r + 1, mean_gap, n_before, hard.size(), kept, filtered));
  }
  KdResult res;
  res.data = pool_set(pool, source);
  for (size_t i = 0; i < pool.size(); i++)
    if (!std::isnan(gap_of[i])) res.data.examples[i].meta["gap"] = gap_of[i];
  res.data.stats = {{"rounds", round_stats}, {"pool", pool.size()}, {"teacher_calls", calls}};
  res.student = std::move(student);
  return res;
}

}  // namespace lmp::distill

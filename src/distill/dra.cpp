#include "distill/dra.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

std::string dra_reflection_prompt(const std::string& prompt, const std::string& wrong) {
  return prompt + wrong + "\nThat is wrong. Try again.\nA:";
}

std::vector<KdExample> dra_feedback(const std::vector<KdItem>& items, const std::vector<std::string>& student,
                                    const std::vector<std::string>& teacher, bool reflect, int round) {
  std::vector<KdExample> out;
  for (size_t i = 0; i < items.size(); i++) {
    const WordProblem& p = *items[i].problem;
    if (solution_right(student[i], p) || !solution_right(teacher[i], p)) continue;
    const nlohmann::json meta = {{"round", round}, {"student", student[i]}};
    out.push_back({items[i].prompt, {{teacher[i], 1.0f, "feedback"}}, meta});
    if (reflect)
      out.push_back({dra_reflection_prompt(items[i].prompt, student[i]), {{teacher[i], 1.0f, "reflection"}}, meta});
  }
  return out;
}

KdResult dra_recipe(const KdContext& ctx) {
  const long rounds = ctx.opt.integer("rounds", 1), tries = ctx.opt.integer("tries", 4);
  const float temperature = float(ctx.opt.real("temperature", 0.7));
  const bool reflect = ctx.opt.integer("reflect", 1) != 0;
  check(rounds >= 0 && tries >= 0 && temperature >= 0, "kd recipe 'dra': rounds, tries, temperature must be >= 0");
  check(ctx.student && ctx.finetune, "kd recipe 'dra' trains the student between rounds (needs student + finetune)");
  const double t0 = now_seconds();
  const auto items = task_items(ctx, "dra");
  long calls = 0;
  std::vector<std::string> greedy;
  for (const KdItem& it : items) greedy.push_back(solve(*ctx.teacher, it.prompt, ctx.max_new)), calls++;
  KdResult r;
  for (size_t i = 0; i < items.size(); i++)
    if (solution_right(greedy[i], *items[i].problem))
      r.data.examples.push_back({items[i].prompt, {{greedy[i], 1.0f, "rationale"}}, {{"round", 0}}});
  kd_log(ctx, "dra", fmt::format("round 0: {} of {} teacher solutions right", r.data.examples.size(), items.size()));
  check(!r.data.examples.empty(), "kd recipe 'dra': the teacher solved none of the {} problems", items.size());
  std::unique_ptr<Model> st = ctx.finetune(*ctx.student, r.data);
  nlohmann::json per_round = nlohmann::json::array();
  for (long round = 1; round <= rounds; round++) {
    std::vector<std::string> exam, feedback;
    long mistakes = 0;
    for (size_t i = 0; i < items.size(); i++) {
      exam.push_back(solve(*st, items[i].prompt, ctx.max_new));
      std::string fb = greedy[i];
      if (!solution_right(exam.back(), *items[i].problem)) {
        mistakes++;
        for (long k = 0; k < tries && !solution_right(fb, *items[i].problem); k++, calls++) {
          const SamplingOptions so{temperature, 0, 1.f, ctx.seed * 7919 + uint64_t(round) * 131 + uint64_t(k) * 17 + i};
          fb = solve(*ctx.teacher, items[i].prompt, ctx.max_new, so);
        }
      }
      feedback.push_back(std::move(fb));
    }
    auto f = dra_feedback(items, exam, feedback, reflect, int(round));
    per_round.push_back({{"round", round}, {"mistakes", mistakes}, {"feedback_examples", f.size()}});
    kd_log(ctx, "dra", fmt::format("round {}: {} mistakes of {}, {} feedback examples", round, mistakes, items.size(),
                                   f.size()));
    if (f.empty()) break;
    for (KdExample& e : f) r.data.examples.push_back(std::move(e));
    st = ctx.finetune(*st, r.data);
  }
  r.student = std::move(st);
  r.data.stats = {{"teacher_calls", calls}, {"written", items.size()}, {"rounds", per_round},
                  {"seconds", now_seconds() - t0}};
  return r;
}

}  // namespace lmp::distill

// cot_magister — Magister, Mallinson, Adamek, Malmi, Severyn 2023, "Teaching Small Language Models to Reason"
// (arXiv 2212.08410). The teacher writes a chain of thought (greedy) for every training problem; the gold answer is
// known, so a CoT is kept only when its final answer is right (wrong reasoning would teach wrong steps); the student
// is fine-tuned on question → rationale + answer, the whole teacher text as one target. Stored: the kept
// examples, with the counts written/kept and the teacher calls in the set's stats.
#include "distill/cot_recipes.h"

namespace lmp::distill {

KdSet magister_set(const std::vector<WordProblem>& ps, const CotWriter& teacher) {
  KdSet s;
  s.recipe = "cot_magister";
  for (const WordProblem& p : ps) {
    const std::string prompt = task_prompt(p), cot = teacher(prompt, {});
    if (!cot_correct(cot, p)) continue;
    KdExample e;
    e.prompt = prompt;
    e.targets.push_back({cot_segment(cot), 1.0f, "cot"});
    s.examples.push_back(std::move(e));
  }
  s.stats = {{"written", ps.size()}, {"kept", s.examples.size()}, {"teacher_calls", ps.size()}};
  return s;
}

KdResult cot_magister_recipe(const KdContext& ctx) {
  const auto& ps = cot_problems(ctx, "cot_magister");
  KdResult r;
  r.data = magister_set(ps, teacher_writer(ctx));
  kd_log(ctx, "cot_magister", fmt::format("kept {} of {} teacher CoTs (right answer)", r.data.examples.size(),
                                          ps.size()));
  return r;
}

}  // namespace lmp::distill

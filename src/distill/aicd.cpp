// AICD — in-context learning distillation with autoregressive meta-teacher forcing over in-context chains of thought
// (2024; described in the KD survey's in-context-learning section; the paper could not be retrieved here, so this
// follows its stated idea). Plain ICL distillation (icl_distill.cpp) scores only the query's answer; AICD puts
// the loss on the chain of thought of EVERY in-context demonstration too, autoregressively: demonstration j's CoT
// is the teacher's answer to it given demonstrations 1..j-1 (the teacher "forces" each step of the in-context
// sequence), so the student learns to produce each solution from the solved ones before it, and one few-shot
// prompt of k demonstrations gives k + 1 supervised CoTs instead of one.
// An example is one few-shot sequence of k + 1 problems of one kind: the first question is the prompt, then the
// targets alternate teacher CoT (weight w for demonstrations, 1 for the query) and the next question (weight 0),
// so prompt + targets spell few_shot_prompt(demos, query) + the query's CoT. Stats count teacher calls.
// Settings: k (demonstrations per sequence, 2), w (loss weight of the demonstrations' CoTs, 1).
#include "distill/inst_recipes.h"

namespace lmp::distill {

KdResult aicd_recipe(const KdContext& ctx) {
  const int k = int(ctx.opt.integer("k", 2));
  const float w = float(ctx.opt.real("w", 1.0));
  check(k >= 1 && w >= 0, "aicd: want k >= 1 and w >= 0");
  check(!ctx.problems.empty(), "aicd distills in-context chains of thought on the arithmetic task: give --task arith");
  const auto& ps = ctx.problems;
  KdResult r;
  size_t calls = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    const ProblemKind kind = problem_kind(ps[i]);
    std::vector<size_t> seq = pick_demos(ps, kind, k, ctx.seed * 1000 + i, i);
    seq.push_back(i);  // the query last
    std::vector<std::pair<std::string, std::string>> solved;
    KdExample e;
    e.prompt = "Q: " + ps[seq[0]].question + "\nA:";
    for (size_t j = 0; j < seq.size(); j++) {
      const bool query = j + 1 == seq.size();
      const std::string cot =
          complete(*ctx.teacher, few_shot_prompt(solved, ps[seq[j]].question), ctx.max_new, {}, "\n\n");
      calls++;
      solved.push_back({ps[seq[j]].question, cot});
      e.targets.push_back({cot, query ? 1.0f : w, query ? "cot" : "demonstration_cot"});
      if (!query) e.targets.push_back({"\n\nQ: " + ps[seq[j + 1]].question + "\nA:", 0.0f, "question"});
    }
    e.meta = {{"kind", kind_name(kind)}, {"sequence", seq}};
    r.data.examples.push_back(std::move(e));
  }
  r.data.stats = {{"k", k}, {"w", w}, {"teacher_calls", calls}};
  kd_log(ctx, "aicd", fmt::format("{} sequences of {} CoTs each, {} teacher calls", ps.size(), k + 1, calls));
  return r;
}

}  // namespace lmp::distill

// step_by_step — Hsieh, Li, Yeh, Nakhost, Fujii, Ratner, Krishna, Lee, Pfister 2023, "Distilling Step-by-Step!
// Outperforming Larger Language Models with Less Training Data and Smaller Model Sizes" (arXiv 2305.02301).
// The teacher's rationale is an auxiliary training target, not part of the answer: every problem gives two
// examples told apart by a task prefix, label_prefix + question → the (gold) answer, and rationale_prefix +
// question → the teacher's rationale, and the student minimises L = L_label + λ · L_rationale (segment weights 1
// and λ in one weighted cross-entropy). At test time the student answers directly, without writing a rationale.
// The label task's prefix defaults to "" so that the plain task prompt (the one task_accuracy and users ask) is
// the label task; label_prefix=[label] gives the paper's two-prefix form. Settings: lambda (default 1, the
// paper's), label_prefix, rationale_prefix (default "[rationale] ").
#include "distill/cot_recipes.h"

namespace lmp::distill {

KdSet step_by_step_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, double lambda,
                       const std::string& label_prefix, const std::string& rationale_prefix) {
  KdSet s;
  s.recipe = "step_by_step";
  long rationales = 0;
  for (const WordProblem& p : ps) {
    const std::string prompt = task_prompt(p);
    KdExample label;
    label.prompt = label_prefix + prompt;
    label.targets.push_back({answer_segment(p.answer), 1.0f, "label"});
    s.examples.push_back(std::move(label));
    const std::string rationale = cot_rationale(teacher(prompt, {}));
    if (rationale.empty() || lambda <= 0) continue;
    KdExample r;
    r.prompt = rationale_prefix + prompt;
    r.targets.push_back({rationale, float(lambda), "rationale"});
    s.examples.push_back(std::move(r));
    rationales++;
  }
  s.stats = {{"written", ps.size()}, {"kept", rationales}, {"teacher_calls", ps.size()}, {"lambda", lambda}};
  return s;
}

KdResult step_by_step_recipe(const KdContext& ctx) {
  const double lambda = ctx.opt.real("lambda", 1.0);
  const std::string label_prefix = ctx.opt.str("label_prefix", "");
  const std::string rationale_prefix = ctx.opt.str("rationale_prefix", "[rationale] ");
  check(lambda >= 0, "kd setting lambda={}: want >= 0", lambda);
  check(label_prefix != rationale_prefix, "kd settings label_prefix and rationale_prefix must differ (they tell "
        "the two tasks apart)");
  const auto& ps = cot_problems(ctx, "step_by_step");
  KdResult r;
  r.data = step_by_step_set(ps, teacher_writer(ctx), lambda, label_prefix, rationale_prefix);
  kd_log(ctx, "step_by_step", fmt::format("{} label + {} rationale examples (lambda {})", ps.size(),
                                          r.data.stats["kept"].dump(), lambda));
  return r;
}

}  // namespace lmp::distill

// In-context learning distillation (Huang, Chen, Yu, McKeown 2022, "In-context Learning Distillation:
// Transferring Few-shot Learning Ability of Pre-trained Language Models", arXiv 2212.10670). The student is
// tuned on few-shot prompts — k solved demonstrations of a task, then a query — with the teacher's prediction
// for the query as the target (the in-context-learning objective; black-box here: the teacher's text, not its
// logits), combined with the language-modeling objective, which the paper applies to the task text (here: the
// demonstrations in the prompt, at weight lm). Two paradigms, two rows of the recipe table:
//   meta_ict       Meta In-context Tuning: tune on some tasks, then few-shot a held-out task. The arithmetic task
//                  has three kinds (add / subtract / two-step, from the program's operators); the held-out kind's
//                  problems never appear in the data, as query or demonstration. The paper finds the LM objective
//                  helps little here, so lm defaults to 0.
//   multitask_ict  Multitask In-context Tuning: tune on the target tasks themselves (all kinds) with few-shot
//                  prompts; ICL and LM objectives are complementary in this paradigm (lm defaults to 1).
// Demonstrations are problems of the query's kind; their answers are the teacher's zero-shot answers (demos=teacher,
// pure black-box) or the reference solutions (demos=gold, the paper's labelled few-shot data). What is stored: one
// example per query (meta.kind, meta.demos); stats count examples and teacher calls.
// Settings: k (demonstrations, 2), lm (LM weight on demonstrations), demos (teacher|gold), and for meta_ict
// holdout (add|subtract|two-step, default two-step).
#include "distill/inst_recipes.h"

namespace lmp::distill {

KdExample ict_example(const std::vector<std::pair<std::string, std::string>>& demos, const std::string& query,
                      const std::string& prediction, float lm) {
  KdExample e;
  if (lm == 0) {  // the demonstrations are context only
    e.prompt = few_shot_prompt(demos, query);
    e.targets.push_back({prediction, 1.0f, "prediction"});
    return e;
  }
  for (const auto& d : demos)
    e.targets.push_back({"Q: " + d.first + "\nA:" + d.second + "\n\n", lm, "demonstration"});
  e.targets.push_back({"Q: " + query + "\nA:", 0.0f, "query"});
  e.targets.push_back({prediction, 1.0f, "prediction"});
  return e;
}

namespace {

KdResult ict_run(const KdContext& ctx, const char* name, bool meta) {
  const int k = int(ctx.opt.integer("k", 2));
  const float lm = float(ctx.opt.real("lm", meta ? 0.0 : 1.0));
  const std::string demo_src = ctx.opt.str("demos", "teacher");
  const ProblemKind holdout = meta ? parse_kind(ctx.opt.str("holdout", "two-step")) : ProblemKind::Add;
  check(k >= 1 && lm >= 0, "{}: want k >= 1 and lm >= 0", name);
  check(demo_src == "teacher" || demo_src == "gold", "{}: demos={} (want teacher or gold)", name, demo_src);
  check(!ctx.problems.empty(), "{} distills few-shot ability on the arithmetic task: give --task arith", name);

  std::vector<WordProblem> train;
  for (const auto& p : ctx.problems)
    if (!meta || problem_kind(p) != holdout) train.push_back(p);
  check(!train.empty(), "{}: no problems outside the held-out kind", name);
  size_t calls = 0;
  std::vector<std::string> label(train.size());
  for (size_t i = 0; i < train.size(); i++) {
    label[i] = demo_src == "gold" ? reference_solution(train[i])
                                  : complete(*ctx.teacher, task_prompt(train[i]), ctx.max_new, {}, "\n\n");
    calls += demo_src == "teacher";
  }
  KdResult r;
  for (size_t i = 0; i < train.size(); i++) {
    const ProblemKind kind = problem_kind(train[i]);
    const std::vector<size_t> di = pick_demos(train, kind, k, ctx.seed * 1000 + i, i);
    std::vector<std::pair<std::string, std::string>> demos;
    for (size_t j : di) demos.push_back({train[j].question, label[j]});
    const std::string pred =
        complete(*ctx.teacher, few_shot_prompt(demos, train[i].question), ctx.max_new, {}, "\n\n");
    calls++;
    KdExample e = ict_example(demos, train[i].question, pred, lm);
    e.meta = {{"kind", kind_name(kind)}, {"demos", di}};
    r.data.examples.push_back(std::move(e));
  }
  r.data.stats = {{"k", k}, {"lm", lm}, {"demos", demo_src}, {"examples", train.size()}, {"teacher_calls", calls}};
  if (meta) r.data.stats["holdout"] = kind_name(holdout);
  kd_log(ctx, name, fmt::format("{} few-shot examples (k={}, lm={}{}), {} teacher calls", train.size(), k, lm,
                                meta ? std::string(", held out: ") + kind_name(holdout) : "", calls));
  return r;
}

}  // namespace

KdResult meta_ict_recipe(const KdContext& ctx) { return ict_run(ctx, "meta_ict", true); }
KdResult multitask_ict_recipe(const KdContext& ctx) { return ict_run(ctx, "multitask_ict", false); }

}  // namespace lmp::distill

// mt_cot — Li, Chen, Shen, Chen, Zhang, Li, Wang, Qian, Peng, Mao, Chen, Yan 2022, "Explanations from Large
// Language Models Make Small Reasoners Better" (arXiv 2210.06726). Explanations by CROP (chain of thought with
// rationalization prompting): the teacher's CoT when its answer is right, otherwise the teacher is prompted again
// with the gold answer given and asked to explain it (rationalization); an explanation that still ends on a wrong
// answer is dropped. Training is the paper's MT-CoT multi-task setup: per problem an answer-prediction task
// (answer_prefix + question → answer, weight α) and a CoT task (question → explanation then answer, weight 1 − α),
// L = α L_answer + (1 − α) L_CoT. The CoT task is the unprefixed one, the task prompt users and task_accuracy ask.
// Settings: alpha (default 0.5), answer_prefix (default "[answer] "). Stats: CoTs right / rationalized / dropped.
#include "distill/cot_recipes.h"

namespace lmp::distill {

KdSet mt_cot_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, double alpha,
                 const std::string& answer_prefix) {
  KdSet s;
  s.recipe = "mt_cot";
  long calls = 0, direct = 0, rationalized = 0, dropped = 0;
  const float wa = float(alpha), we = float(1 - alpha);
  for (const WordProblem& p : ps) {
    const std::string prompt = task_prompt(p);
    std::string expl = teacher(prompt, {});
    calls++;
    const char* source = "cot";
    if (!cot_correct(expl, p)) {  // CROP: fall back to rationalization with the gold answer given
      expl = teacher(answer_given_prompt(p, p.answer), {});
      calls++;
      source = "rationalization";
    }
    if (!cot_correct(expl, p)) {
      dropped++;
      continue;
    }
    (source[0] == 'c' ? direct : rationalized)++;
    KdExample ans;
    ans.prompt = answer_prefix + prompt;
    ans.targets.push_back({answer_segment(p.answer), wa, "answer"});
    KdExample cot;
    cot.prompt = prompt;
    cot.targets.push_back({cot_rationale(expl), we, "explanation"});
    cot.targets.push_back({answer_segment(p.answer), we, "answer"});
    cot.meta["source"] = source;
    if (wa > 0) s.examples.push_back(std::move(ans));
    if (we > 0) s.examples.push_back(std::move(cot));
  }
  s.stats = {{"written", calls},           {"kept", direct + rationalized}, {"cot_right", direct},
             {"rationalized", rationalized}, {"dropped", dropped},            {"teacher_calls", calls},
             {"alpha", alpha}};
  return s;
}

KdResult mt_cot_recipe(const KdContext& ctx) {
  const double alpha = ctx.opt.real("alpha", 0.5);
  const std::string answer_prefix = ctx.opt.str("answer_prefix", "[answer] ");
  check(alpha >= 0 && alpha <= 1, "kd setting alpha={}: want in [0, 1]", alpha);
  check(!answer_prefix.empty(), "kd setting answer_prefix must be non-empty (it tells the answer task apart)");
  const auto& ps = cot_problems(ctx, "mt_cot");
  KdResult r;
  r.data = mt_cot_set(ps, teacher_writer(ctx), alpha, answer_prefix);
  kd_log(ctx, "mt_cot", fmt::format("CROP: {} CoTs right, {} rationalized, {} dropped", r.data.stats["cot_right"].dump(),
                                    r.data.stats["rationalized"].dump(), r.data.stats["dropped"].dump()));
  return r;
}

}  // namespace lmp::distill

#include "distill/pad.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

PadCheck pad_check(const std::string& teacher_text, const WordProblem& p) {
  PadCheck c;
  const auto prog = solution_program(teacher_text);
  if (!prog) return c;
  c.program = *prog;
  const auto v = eval_program(*prog);
  if (!v) {
    c.verdict = PadVerdict::ProgramFails;
    return c;
  }
  c.value = *v;
  c.verdict = *v == p.answer ? PadVerdict::Kept : PadVerdict::WrongAnswer;
  return c;
}

KdExample pad_example(const std::string& prompt, const PadCheck& c, float answer_weight) {
  KdExample e;
  e.prompt = prompt;
  e.targets.push_back({" " + c.program + " =", 1.0f, "program"});
  e.targets.push_back({fmt::format(" {}.", c.value) + answer_sentence(c.value), answer_weight, "answer"});
  e.meta = {{"program", c.program}, {"executed", c.value}};
  return e;
}

std::string pad_student_program(const std::string& completion) {
  const size_t end = completion.find_first_of("=\n");
  std::string s = completion.substr(0, end);
  const size_t f = s.find_first_not_of(' '), l = s.find_last_not_of(' ');
  return f == std::string::npos ? "" : s.substr(f, l - f + 1);
}

double pad_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new) {
  if (ps.empty()) return 0;
  int right = 0;
  for (const auto& p : ps) {
    const auto v = eval_program(pad_student_program(solve(m, task_prompt(p), max_new)));
    right += v && *v == p.answer;
  }
  return double(right) / double(ps.size());
}

KdResult pad_recipe(const KdContext& ctx) {
  const float answer_weight = float(ctx.opt.real("answer_weight", 1.0));
  check(answer_weight >= 0, "kd setting answer_weight = {}: want >= 0", answer_weight);
  const double t0 = now_seconds();
  KdResult r;
  int counts[4] = {0, 0, 0, 0};
  const auto items = task_items(ctx, "pad");
  for (const KdItem& it : items) {
    const PadCheck c = pad_check(solve(*ctx.teacher, it.prompt, ctx.max_new), *it.problem);
    counts[int(c.verdict)]++;
    if (c.verdict == PadVerdict::Kept) r.data.examples.push_back(pad_example(it.prompt, c, answer_weight));
  }
  r.data.stats = {{"teacher_calls", items.size()}, {"written", items.size()}, {"kept", counts[0]},
                  {"dropped_no_program", counts[1]}, {"dropped_program_fails", counts[2]},
                  {"dropped_wrong_answer", counts[3]}, {"seconds", now_seconds() - t0}};
  kd_log(ctx, "pad", fmt::format("{} of {} programs kept ({} none, {} fail, {} wrong)", counts[0], items.size(),
                                 counts[1], counts[2], counts[3]));
  return r;
}

}  // namespace lmp::distill

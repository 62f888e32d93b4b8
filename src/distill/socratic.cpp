#include "distill/socratic.h"

#include <cctype>

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

std::vector<SubStep> socratic_decompose(const std::string& program) {
  const auto total = eval_program(program);
  if (!total) return {};
  if (program.find_first_of("*()") != std::string::npos)
    return {{fmt::format("What is {}?", program), fmt::format(" {} = {}.", program, *total)}};
  // + / − chain: numbers and operators in order
  std::vector<long> nums;
  std::vector<char> ops;
  size_t i = 0;
  while (i < program.size()) {
    const char c = program[i];
    if (c == '+' || c == '-') ops.push_back(c), i++;
    else if (std::isdigit(static_cast<unsigned char>(c))) {
      const size_t st = i;
      while (i < program.size() && std::isdigit(static_cast<unsigned char>(program[i]))) i++;
      nums.push_back(*eval_program(program.substr(st, i - st)));
    } else i++;
  }
  if (ops.empty()) return {{fmt::format("What is {}?", nums[0]), fmt::format(" {} = {}.", nums[0], nums[0])}};
  std::vector<SubStep> out;
  long acc = nums[0];
  for (size_t k = 0; k < ops.size(); k++) {
    const long nx = ops[k] == '+' ? acc + nums[k + 1] : acc - nums[k + 1];
    out.push_back({fmt::format("What is {} {} {}?", acc, ops[k], nums[k + 1]),
                   fmt::format(" {} {} {} = {}.", acc, ops[k], nums[k + 1], nx)});
    acc = nx;
  }
  return out;
}

std::string socratic_qg_prompt(const WordProblem& p) { return "Q: " + p.question + "\nSub-questions:"; }

std::string socratic_qa_prompt(const WordProblem& p, const std::vector<SubStep>& done, const std::string& next) {
  std::string s = "Q: " + p.question + "\n";
  for (const SubStep& d : done) s += "Sub-question: " + d.question + "\nSub-answer:" + d.answer + "\n";
  return s + "Sub-question: " + next + "\nSub-answer:";
}

std::vector<KdExample> socratic_examples(const WordProblem& p, const std::vector<SubStep>& steps,
                                         const std::string& mode) {
  std::vector<KdExample> out;
  if (steps.empty()) return out;
  const long answer = find_equation(steps.back().answer)->rhs;
  if (mode == "unified") {
    std::string t;
    for (const SubStep& s : steps) t += " " + s.question + s.answer;
    out.push_back({task_prompt(p), {{t + answer_sentence(answer), 1.0f, "subquestions+answers"}}, {}});
    return out;
  }
  std::string qs;
  for (const SubStep& s : steps) qs += " " + s.question;
  out.push_back({socratic_qg_prompt(p), {{qs, 1.0f, "question_generator"}}, {{"role", "qg"}}});
  for (size_t k = 0; k < steps.size(); k++) {
    const std::vector<SubStep> done(steps.begin(), steps.begin() + long(k));
    std::string a = steps[k].answer;
    if (k + 1 == steps.size()) a += answer_sentence(answer);
    out.push_back({socratic_qa_prompt(p, done, steps[k].question), {{a, 1.0f, "question_answerer"}},
                   {{"role", "qa"}, {"step", k}}});
  }
  return out;
}

std::optional<long> socratic_answer(const Model& m, const WordProblem& p, int max_new) {
  const std::string gen = complete(m, socratic_qg_prompt(p), max_new, {}, "\n");
  std::vector<SubStep> done;
  std::string last;
  size_t a = 0;
  while (done.size() < 4) {
    const size_t q = gen.find('?', a);
    if (q == std::string::npos) break;
    std::string sq = gen.substr(a, q + 1 - a);
    a = q + 1;
    sq.erase(0, sq.find_first_not_of(' '));
    if (sq.size() < 2) continue;
    last = complete(m, socratic_qa_prompt(p, done, sq), max_new, {}, "\n");
    done.push_back({sq, last});
  }
  if (auto v = extract_answer(last)) return v;
  if (auto e = find_equation(last)) return e->rhs;
  return std::nullopt;
}

double socratic_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new) {
  if (ps.empty()) return 0;
  int right = 0;
  for (const auto& p : ps) {
    const auto v = socratic_answer(m, p, max_new);
    right += v && *v == p.answer;
  }
  return double(right) / double(ps.size());
}

KdResult socratic_recipe(const KdContext& ctx) {
  const std::string mode = ctx.opt.str("mode", "roles");
  check(mode == "roles" || mode == "unified", "kd setting mode = '{}': want roles or unified", mode);
  const double t0 = now_seconds();
  KdResult r;
  const auto items = task_items(ctx, "socratic");
  int kept = 0;
  for (const KdItem& it : items) {
    const std::string sol = solve(*ctx.teacher, it.prompt, ctx.max_new);
    const auto prog = solution_program(sol);
    if (!solution_right(sol, *it.problem) || !prog || eval_program(*prog) != it.problem->answer) continue;
    kept++;
    for (KdExample& e : socratic_examples(*it.problem, socratic_decompose(*prog), mode))
      r.data.examples.push_back(std::move(e));
  }
  r.data.stats = {{"teacher_calls", items.size()}, {"written", items.size()}, {"kept", kept}, {"mode", mode},
                  {"seconds", now_seconds() - t0}};
  kd_log(ctx, "socratic", fmt::format("{} of {} solutions decomposed into {} examples ({})", kept, items.size(),
                                      r.data.examples.size(), mode));
  return r;
}

}  // namespace lmp::distill

#include "distill/lmtwa.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

double lmtwa_utility(const Model& student, const WordProblem& p, const std::string& rationale) {
  const std::string gold = answer_sentence(p.answer), prompt = task_prompt(p);
  return score(student, prompt + rationale, gold).sum_logp - score(student, prompt, gold).sum_logp;
}

std::vector<bool> lmtwa_select(const std::vector<double>& utility, double budget) {
  const size_t n = utility.size();
  const size_t k = std::min(n, size_t(std::ceil(budget * double(n) - 1e-9)));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return utility[a] > utility[b]; });
  std::vector<bool> pick(n, false);
  for (size_t i = 0; i < k; i++) pick[order[i]] = true;
  return pick;
}

KdSet lmtwa_build(const Model& student, const std::vector<KdItem>& items, const std::vector<std::string>& solutions,
                  double budget) {
  std::vector<size_t> idx;
  std::vector<double> u;
  for (size_t i = 0; i < items.size(); i++) {
    if (split_solution(solutions[i]).second.empty()) continue;  // no stated answer
    idx.push_back(i);
    u.push_back(lmtwa_utility(student, *items[i].problem, split_solution(solutions[i]).first));
  }
  const std::vector<bool> pick = lmtwa_select(u, budget);
  KdSet s;
  for (size_t j = 0; j < idx.size(); j++) {
    const auto [rationale, answer] = split_solution(solutions[idx[j]]);
    KdExample e;
    e.prompt = items[idx[j]].prompt;
    if (pick[j]) e.targets.push_back({rationale, 1.0f, "rationale"});
    e.targets.push_back({answer, 1.0f, "answer"});
    e.meta = {{"utility", u[j]}, {"explained", bool(pick[j])}};
    s.examples.push_back(std::move(e));
  }
  s.stats = {{"with_answer", idx.size()},
             {"explained", std::count(pick.begin(), pick.end(), true)}};
  return s;
}

KdResult lmtwa_recipe(const KdContext& ctx) {
  const double budget = ctx.opt.real("budget", 0.5);
  check(budget >= 0 && budget <= 1, "kd setting budget = {}: want a fraction in [0, 1]", budget);
  check(ctx.student, "kd recipe 'lmtwa' needs the student (its utilities are the student's likelihoods)");
  const double t0 = now_seconds();
  const auto items = task_items(ctx, "lmtwa");
  std::vector<std::string> sols;
  for (const KdItem& it : items) sols.push_back(solve(*ctx.teacher, it.prompt, ctx.max_new));
  KdResult r;
  r.data = lmtwa_build(*ctx.student, items, sols, budget);
  r.data.stats.update({{"teacher_calls", items.size()}, {"written", items.size()}, {"budget", budget},
                       {"seconds", now_seconds() - t0}});
  kd_log(ctx, "lmtwa", fmt::format("{} of {} problems explained (budget {})", r.data.stats["explained"].get<long>(),
                                   r.data.examples.size(), budget));
  return r;
}

}  // namespace lmp::distill

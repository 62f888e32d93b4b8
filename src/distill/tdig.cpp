#include "distill/tdig.h"

#include <algorithm>
#include <cctype>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

namespace {

// The integers in s with their start offsets.
std::vector<std::pair<size_t, long>> numbers(const std::string& s) {
  std::vector<std::pair<size_t, long>> out;
  for (size_t i = 0; i < s.size();) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) {
      i++;
      continue;
    }
    const size_t st = i;
    long v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) v = (i - st < 9 ? v * 10 + (s[i] - '0') : v), i++;
    out.push_back({st, v});
  }
  return out;
}

bool step_wrong(const std::string& sent, bool last_equation, const WordProblem& p, const std::set<long>& given) {
  const auto eq = find_equation(sent);
  size_t rhs_at = std::string::npos;
  if (eq) {
    const auto v = eval_program(eq->lhs);
    if (!v || *v != eq->rhs || (last_equation && eq->rhs != p.answer)) return true;
    rhs_at = sent.find_first_of("0123456789", sent.find('='));
  }
  const auto nums = numbers(sent);
  if (nums.empty()) return true;  // every step of this task's reasoning states a quantity: off-task text
  for (const auto& [at, v] : nums)
    if (at != rhs_at && !given.count(v)) return true;
  return false;
}

}  // namespace

std::string tdig_correct_prefix(const std::string& solution, const WordProblem& p) {
  std::set<long> given;
  for (const auto& nv : numbers(p.question)) given.insert(nv.second);
  const auto steps = sentences(split_solution(solution).first);
  long last_eq = -1;
  for (size_t k = 0; k < steps.size(); k++)
    if (find_equation(steps[k])) last_eq = long(k);
  std::string prefix;
  for (size_t k = 0; k < steps.size(); k++) {
    if (step_wrong(steps[k], long(k) == last_eq, p, given)) break;
    prefix += steps[k];
  }
  return prefix;
}

std::optional<KdExample> tdig_example(const KdItem& it, const std::string& solution, float neg_weight) {
  if (solution_right(solution, *it.problem))
    return KdExample{it.prompt, {{solution, 1.0f, "positive"}}, {{"negative", false}}};
  if (neg_weight <= 0) return std::nullopt;  // neg_weight=0: the positives-only control
  const std::string prefix = tdig_correct_prefix(solution, *it.problem);
  if (prefix.find_first_not_of(' ') == std::string::npos) return std::nullopt;
  return KdExample{it.prompt, {{prefix, neg_weight, "negative_prefix"}, {"", 0.0f, "stop"}},
                   {{"negative", true}, {"sample", solution}}};
}

KdResult tdig_recipe(const KdContext& ctx) {
  const long samples = ctx.opt.integer("samples", 4);
  const float temperature = float(ctx.opt.real("temperature", 0.8));
  const float neg_weight = float(ctx.opt.real("neg_weight", 0.3));
  check(samples >= 1 && temperature >= 0 && neg_weight >= 0,
        "kd recipe 'tdig': want samples >= 1, temperature >= 0, neg_weight >= 0");
  const double t0 = now_seconds();
  const auto items = task_items(ctx, "tdig");
  KdResult r;
  long pos = 0, neg = 0, neg_dropped = 0;
  for (size_t i = 0; i < items.size(); i++) {
    std::vector<std::string> seen;
    for (long k = 0; k < samples; k++) {
      const SamplingOptions so{k == 0 ? 0.f : temperature, 0, 1.f, ctx.seed * 1000003 + i * 64 + uint64_t(k)};
      const std::string sol = solve(*ctx.teacher, items[i].prompt, ctx.max_new, so);
      if (std::find(seen.begin(), seen.end(), sol) != seen.end()) continue;  // duplicates add nothing
      seen.push_back(sol);
      auto e = tdig_example(items[i], sol, neg_weight);
      if (!e) {
        neg_dropped++;
        continue;
      }
      (e->meta["negative"].get<bool>() ? neg : pos)++;
      r.data.examples.push_back(std::move(*e));
    }
  }
  r.data.stats = {{"teacher_calls", items.size() * size_t(samples)}, {"written", items.size() * size_t(samples)},
                  {"positives", pos}, {"negative_prefixes", neg}, {"negatives_without_correct_step", neg_dropped},
                  {"seconds", now_seconds() - t0}};
  kd_log(ctx, "tdig", fmt::format("{} positives, {} negative prefixes (weight {}), {} negatives with no correct step",
                                  pos, neg, neg_weight, neg_dropped));
  return r;
}

}  // namespace lmp::distill

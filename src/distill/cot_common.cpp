#include "distill/cot_common.h"

#include <random>

#include "core/error.h"

namespace lmp::distill {

CotWriter teacher_writer(const KdContext& ctx, long* calls) {
  return [&ctx, calls](const std::string& prompt, const SamplingOptions& so) {
    if (calls) ++*calls;
    return complete(*ctx.teacher, prompt, ctx.max_new, so, "\n\n");
  };
}

const std::vector<WordProblem>& cot_problems(const KdContext& ctx, const char* recipe) {
  check(!ctx.problems.empty(), "kd recipe '{}' distills chain-of-thought on task problems with known answers: give "
        "--task arith (--prompts alone has no answers to check)", recipe);
  return ctx.problems;
}

bool cot_correct(const std::string& text, const WordProblem& p) {
  const auto a = extract_answer(text);
  return a && *a == p.answer;
}

std::string cot_segment(const std::string& text) {
  const size_t k = text.find_first_not_of(' ');
  return k == std::string::npos ? std::string() : " " + text.substr(k);
}

std::string answer_segment(long answer) { return cot_segment(answer_sentence(answer)); }

std::string cot_rationale(const std::string& text) {
  size_t k = text.rfind("The answer is");
  if (k == std::string::npos) k = text.size();
  std::string r = cot_segment(text.substr(0, k));
  while (!r.empty() && (r.back() == ' ' || r.back() == '\n')) r.pop_back();
  return r;
}

std::string answer_given_prompt(const WordProblem& p, long answer) {
  return "Q: " + p.question + answer_sentence(answer) + "\nA:";
}

long perturbed_answer(long gold, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 29);
  const long d = std::uniform_int_distribution<long>(1, 3)(rng);
  const bool down = (rng() & 1) && gold - d >= 0;
  return down ? gold - d : gold + d;
}

SamplingOptions cot_sampling(uint64_t seed, double temperature, size_t item, int k) {
  SamplingOptions so;
  so.temperature = float(temperature);
  so.seed = seed * 1000003ull + uint64_t(item) * 131ull + uint64_t(k) + 1;
  return so;
}

}  // namespace lmp::distill

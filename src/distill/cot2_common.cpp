#include "distill/cot2_common.h"

#include <cctype>

#include "core/error.h"
#include "distill/pad.h"
#include "distill/socratic.h"

namespace lmp::distill {

std::vector<KdItem> task_items(const KdContext& ctx, const std::string& recipe) {
  std::vector<KdItem> out;
  for (const KdItem& it : kd_pool(ctx))
    if (it.problem) out.push_back(it);
  check(!out.empty(), "kd recipe '{}' needs task problems with checkable answers (--task arith --task-n N)", recipe);
  return out;
}

std::string solve(const Model& m, const std::string& prompt, int max_new, const SamplingOptions& so) {
  return complete(m, prompt, max_new, so, "\n\n");
}

bool solution_right(const std::string& text, const WordProblem& p) {
  const auto a = extract_answer(text);
  return a && *a == p.answer;
}

std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  size_t a = 0;
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if ((c == '.' || c == '?' || c == '!') && (i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n')) {
      out.push_back(text.substr(a, i + 1 - a));
      a = i + 1;
    }
  }
  if (a < text.size()) out.push_back(text.substr(a));
  return out;
}

static bool expr_char(char c) {
  return std::isdigit(static_cast<unsigned char>(c)) || c == ' ' || c == '+' || c == '-' || c == '*' || c == '(' ||
         c == ')';
}

std::optional<Equation> find_equation(const std::string& s) {
  const size_t eq = s.find('=');
  if (eq == std::string::npos) return std::nullopt;
  size_t b = eq;
  while (b > 0 && expr_char(s[b - 1])) b--;
  std::string lhs = s.substr(b, eq - b);
  const size_t f = lhs.find_first_not_of(' '), l = lhs.find_last_not_of(' ');
  if (f == std::string::npos) return std::nullopt;
  lhs = lhs.substr(f, l - f + 1);
  bool digit = false;
  for (char c : lhs) digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
  size_t i = eq + 1;
  while (i < s.size() && s[i] == ' ') i++;
  const size_t st = i;
  long v = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])) && i - st < 9) v = v * 10 + (s[i++] - '0');
  if (!digit || i == st) return std::nullopt;
  return Equation{lhs, v};
}

std::optional<std::string> solution_program(const std::string& text) {
  std::optional<std::string> last;
  for (const std::string& s : sentences(text))
    if (auto e = find_equation(s)) last = e->lhs;
  return last;
}

std::pair<std::string, std::string> split_solution(const std::string& text) {
  const size_t k = text.rfind(" The answer is");
  if (k == std::string::npos) return {text, ""};
  return {text.substr(0, k), text.substr(k)};
}

double mean_nll(const Model& m, const std::string& context, const std::string& text) {
  const Score s = score(m, context, text);
  return s.ntokens ? -s.mean() : 0.0;
}

nlohmann::json recipe_task_metrics(const std::string& recipe, const Model& m, const std::vector<WordProblem>& ps,
                                   const std::string& suffix) {
  nlohmann::json j = nlohmann::json::object();
  if (ps.empty()) return j;
  if (recipe == "pad") j["pad_accuracy" + suffix] = pad_accuracy(m, ps);
  if (recipe == "socratic") j["socratic_accuracy" + suffix] = socratic_accuracy(m, ps);
  return j;
}

}  // namespace lmp::distill

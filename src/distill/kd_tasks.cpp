#include "distill/kd_tasks.h"

#include <cctype>
#include <climits>
#include <random>

#include <fmt/format.h>

#include "distill/kd_data.h"

namespace lmp::distill {

namespace {

const char* const kNames[] = {"Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Anna", "Sam", "Lucy", "Tim"};
const char* const kThings[] = {"apples", "balls", "toys", "flowers", "cookies", "stars", "books", "cars"};

struct Pick {
  std::mt19937_64& rng;
  int in(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  template <size_t N>
  const char* of(const char* const (&a)[N]) { return a[size_t(in(0, int(N) - 1))]; }
};

WordProblem make_problem(Pick& pk) {
  const std::string a = pk.of(kNames);
  std::string b = pk.of(kNames);
  while (b == a) b = pk.of(kNames);
  const std::string x = pk.of(kThings);
  WordProblem p;
  const int kind = pk.in(0, 2);
  const int u = pk.in(1, 9), v = pk.in(1, 9);
  if (kind == 0) {  // addition
    p.question = fmt::format("{} had {} {}. {} gave {} {} more {}. How many {} does {} have now?", a, u, x, b, a, v, x,
                             x, a);
    p.rationale = fmt::format("{} had {} {}. {} got {} more. {} + {} = {}.", a, u, x, a, v, u, v, u + v);
    p.program = fmt::format("{} + {}", u, v);
    p.answer = u + v;
  } else if (kind == 1) {  // subtraction, never negative
    const int hi = std::max(u, v), lo = std::min(u, v);
    p.question = fmt::format("{} had {} {}. {} gave {} of them to {}. How many {} does {} have now?", a, hi, x, a, lo,
                             b, x, a);
    p.rationale = fmt::format("{} had {} {}. {} gave away {}. {} - {} = {}.", a, hi, x, a, lo, hi, lo, hi - lo);
    p.program = fmt::format("{} - {}", hi, lo);
    p.answer = hi - lo;
  } else {  // two steps
    const int w = pk.in(1, 5);
    p.question = fmt::format("{} had {} {}. {} gave {} {} more. Then {} found {} more. How many {} does {} have?", a,
                             u, x, b, a, v, a, w, x, a);
    p.rationale = fmt::format("{} had {} {}. {} got {} more and found {} more. {} + {} + {} = {}.", a, u, x, a, v, w,
                              u, v, w, u + v + w);
    p.program = fmt::format("{} + {} + {}", u, v, w);
    p.answer = u + v + w;
  }
  return p;
}

// Recursive descent over expr := term (('+'|'-') term)* ; term := factor ('*' factor)* ; factor := int | '(' expr ')'.
struct ExprParser {
  const std::string& s;
  size_t i = 0;
  bool ok = true;
  void ws() { while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++; }
  static bool add_ok(long a, long b, long& r) { return !__builtin_add_overflow(a, b, &r); }
  long factor() {
    ws();
    if (i < s.size() && s[i] == '(') {
      i++;
      long v = expr();
      ws();
      if (i >= s.size() || s[i] != ')') ok = false;
      i++;
      return v;
    }
    const size_t st = i;
    long v = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (__builtin_mul_overflow(v, 10L, &v) || !add_ok(v, s[i] - '0', v)) ok = false;
      i++;
    }
    if (i == st) ok = false;
    return v;
  }
  long term() {
    long v = factor();
    for (ws(); ok && i < s.size() && s[i] == '*'; ws()) {
      i++;
      if (__builtin_mul_overflow(v, factor(), &v)) ok = false;
    }
    return v;
  }
  long expr() {
    long v = term();
    for (ws(); ok && i < s.size() && (s[i] == '+' || s[i] == '-'); ws()) {
      const char op = s[i++];
      const long t = term();
      if (op == '+' ? __builtin_add_overflow(v, t, &v) : __builtin_sub_overflow(v, t, &v)) ok = false;
    }
    return v;
  }
};

}  // namespace

std::vector<WordProblem> word_problems(int n, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 17);
  Pick pk{rng};
  std::vector<WordProblem> out;
  for (int k = 0; k < n; k++) out.push_back(make_problem(pk));
  return out;
}

std::string task_prompt(const WordProblem& p) { return "Q: " + p.question + "\nA:"; }
std::string answer_sentence(long answer) { return fmt::format(" The answer is {}.", answer); }
std::string reference_solution(const WordProblem& p) { return " " + p.rationale + answer_sentence(p.answer); }

std::string task_text(const std::vector<WordProblem>& ps) {
  std::string t;
  for (const auto& p : ps) t += task_prompt(p) + reference_solution(p) + "\n\n";
  return t;
}

std::optional<long> extract_answer(const std::string& text) {
  const size_t k = text.rfind("answer is");
  if (k == std::string::npos) return std::nullopt;
  size_t i = k + 9;
  while (i < text.size() && text[i] == ' ') i++;
  const size_t st = i;
  long v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) && i - st < 9) v = v * 10 + (text[i++] - '0');
  if (i == st) return std::nullopt;
  return v;
}

std::optional<long> eval_program(const std::string& program) {
  ExprParser p{program};
  const long v = p.expr();
  p.ws();
  if (!p.ok || p.i != program.size()) return std::nullopt;
  return v;
}

double task_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new) {
  if (ps.empty()) return 0;
  int right = 0;
  for (const auto& p : ps) {
    const auto a = extract_answer(complete(m, task_prompt(p), max_new, {}, "\n\n"));
    right += a && *a == p.answer;
  }
  return double(right) / double(ps.size());
}

}  // namespace lmp::distill

#include "distill/inst_common.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <set>

#include "core/error.h"

namespace lmp::distill {

// ---- text measures -------------------------------------------------------------------------------------------

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::string w;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      w += char(std::tolower(static_cast<unsigned char>(c)));
    } else if (!w.empty()) {
      out.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(std::move(w));
  return out;
}

double rouge_l(const std::string& a, const std::string& b) {
  const auto x = words(a), y = words(b);
  if (x.empty() || y.empty()) return 0;
  std::vector<int> prev(y.size() + 1, 0), cur(y.size() + 1, 0);  // LCS by rows
  for (size_t i = 1; i <= x.size(); i++) {
    for (size_t j = 1; j <= y.size(); j++)
      cur[j] = x[i - 1] == y[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  const double lcs = prev[y.size()];
  if (lcs == 0) return 0;
  const double p = lcs / double(x.size()), r = lcs / double(y.size());
  return 2 * p * r / (p + r);
}

double distinct_n(const std::vector<std::string>& texts, int n) {
  std::set<std::vector<std::string>> uniq;
  size_t total = 0;
  for (const auto& t : texts) {
    const auto w = words(t);
    for (size_t i = 0; i + size_t(n) <= w.size(); i++, total++)
      uniq.insert(std::vector<std::string>(w.begin() + long(i), w.begin() + long(i) + n));
  }
  return total ? double(uniq.size()) / double(total) : 0.0;
}

// ---- instructions --------------------------------------------------------------------------------------------

std::string InstItem::prompt() const { return task ? "Q: " + instruction + "\nA:" : instruction; }

std::vector<InstItem> instruction_pool(const KdContext& ctx) {
  std::vector<InstItem> pool;
  for (const auto& p : ctx.problems) pool.push_back({p.question, true, ""});
  for (const auto& p : ctx.prompts) pool.push_back({p, false, ""});
  check(!pool.empty(), "kd recipe: no prompts and no task problems (give --prompts FILE or --task arith)");
  return pool;
}

std::string teacher_answer(const KdContext& ctx, const InstItem& it) {
  return complete(*ctx.teacher, it.prompt(), ctx.max_new, {}, it.task ? "\n\n" : "");
}

std::string generation_prompt(const std::vector<const InstItem*>& examples, bool task, const std::string& prefix) {
  std::string s;
  for (const InstItem* e : examples) s += task ? e->prompt() + e->response + "\n\n" : e->instruction + "\n";
  if (task) s += "Q:";
  if (!prefix.empty()) s += (task ? " " : "") + prefix;
  return s;
}

std::vector<const InstItem*> pick_examples(const std::vector<InstItem>& pool, const std::vector<size_t>& from, int k,
                                           std::mt19937_64& rng, bool* task) {
  auto draw = [&]() -> const InstItem& { return pool[from.empty() ? rng() % pool.size() : from[rng() % from.size()]]; };
  *task = draw().task;
  std::vector<const InstItem*> ex;
  for (int j = 0; j < 4 * k && int(ex.size()) < k; j++) {
    const InstItem& c = draw();
    if (c.task == *task) ex.push_back(&c);
  }
  return ex;
}

static std::string trim(std::string s) {
  const size_t a = s.find_first_not_of(" \t\r");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r");
  return s.substr(a, b - a + 1);
}

std::string sample_instruction(const KdContext& ctx, const std::string& gen_prompt, const std::string& prefix,
                               const SamplingOptions& so) {
  return trim(prefix + complete(*ctx.teacher, gen_prompt, ctx.max_new, so, "\n"));
}

bool well_formed(const std::string& instr, bool task, size_t max_words) {
  const size_t n = words(instr).size();
  if (n < 4 || n > 2 * std::max<size_t>(max_words, 4)) return false;
  if (task) return instr.back() == '?' && instr.find("A:") == std::string::npos;
  return true;
}

double max_rouge(const std::string& instr, const std::vector<InstItem>& pool) {
  double m = 0;
  for (const auto& p : pool) m = std::max(m, rouge_l(instr, p.instruction));
  return m;
}

KdExample inst_example(const InstItem& it, const std::string& source) {
  KdExample e;
  e.prompt = it.prompt();
  e.targets.push_back({it.response, 1.0f, "response"});
  e.meta["source"] = source;
  return e;
}

// ---- few-shot prompts and evaluation --------------------------------------------------------------------------

ProblemKind problem_kind(const WordProblem& p) {
  const long ops = std::count(p.program.begin(), p.program.end(), '+') +
                   std::count(p.program.begin(), p.program.end(), '-');
  if (ops >= 2) return ProblemKind::TwoStep;
  return p.program.find('-') != std::string::npos ? ProblemKind::Subtract : ProblemKind::Add;
}

const char* kind_name(ProblemKind k) {
  static const char* const n[] = {"add", "subtract", "two-step"};
  return n[int(k)];
}

ProblemKind parse_kind(const std::string& s) {
  for (int k = 0; k < 3; k++)
    if (s == kind_name(ProblemKind(k))) return ProblemKind(k);
  fail("problem kind '{}' is not known (add, subtract, two-step)", s);
}

std::string few_shot_prompt(const std::vector<std::pair<std::string, std::string>>& demos, const std::string& query) {
  std::string s;
  for (const auto& [q, a] : demos) s += "Q: " + q + "\nA:" + a + "\n\n";
  return s + "Q: " + query + "\nA:";
}

std::vector<size_t> pick_demos(const std::vector<WordProblem>& pool, ProblemKind kind, int k, uint64_t seed,
                               size_t exclude) {
  std::vector<size_t> cand;
  for (size_t i = 0; i < pool.size(); i++)
    if (i != exclude && problem_kind(pool[i]) == kind) cand.push_back(i);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 7);
  std::shuffle(cand.begin(), cand.end(), rng);
  if (cand.size() > size_t(std::max(k, 0))) cand.resize(size_t(std::max(k, 0)));
  return cand;
}

FewShotAccuracy few_shot_accuracy(const Model& m, const std::vector<WordProblem>& eval,
                                  const std::vector<WordProblem>& demos, int k, uint64_t seed, int max_new) {
  FewShotAccuracy r;
  int right[3] = {0, 0, 0}, count[3] = {0, 0, 0};
  for (size_t i = 0; i < eval.size(); i++) {
    const ProblemKind kind = problem_kind(eval[i]);
    std::vector<std::pair<std::string, std::string>> d;
    for (size_t j : pick_demos(demos, kind, k, seed + i)) d.push_back({demos[j].question, reference_solution(demos[j])});
    const auto a = extract_answer(complete(m, few_shot_prompt(d, eval[i].question), max_new, {}, "\n\n"));
    right[int(kind)] += a && *a == eval[i].answer;
    count[int(kind)]++;
  }
  int tr = 0, tc = 0;
  for (int c = 0; c < 3; c++) {
    if (count[c]) r.by_kind[c] = double(right[c]) / count[c];
    tr += right[c], tc += count[c];
  }
  r.overall = tc ? double(tr) / tc : 0;
  return r;
}

}  // namespace lmp::distill

// Instruction-following and in-context distillation recipes (src/distill/: self_instruct, lamini, lion,
// icl_distill, aicd, inst_common), each checked on its defining property against an independent computation on
// the built-in stories260K: Self-Instruct keeps no instruction whose ROUGE-L against the pool reaches the
// threshold (and every rejected one does reach it), LaMini's topic-guided instructions start with their topic and
// its distinct-n matches a direct count, Lion's hard instructions are exactly those with the largest
// teacher-referee gap, the ICT examples hold k same-kind demonstrations (never the held-out kind) and the teacher's
// few-shot prediction, and AICD's targets are the teacher's autoregressive CoTs of every demonstration.
#include <algorithm>
#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "distill/inst_recipes.h"
#include "testutil.h"
#include "train/tmodel.h"

using namespace lmp;
using namespace lmp::distill;

namespace {
std::string builtin_model() { return std::string(LMP_SOURCE_DIR) + "/models/stories260K"; }

// ROUGE-L F1 by the full LCS table over whitespace-split, punctuation-stripped, lower-cased words.
double rouge_ref(const std::string& a, const std::string& b) {
  auto split = [](const std::string& s) {
    std::vector<std::string> w;
    std::string cur;
    for (char c : s + " ") {
      if (std::isalnum(static_cast<unsigned char>(c))) cur += char(std::tolower(static_cast<unsigned char>(c)));
      else if (!cur.empty()) w.push_back(cur), cur.clear();
    }
    return w;
  };
  const auto x = split(a), y = split(b);
  if (x.empty() || y.empty()) return 0;
  std::vector<std::vector<int>> L(x.size() + 1, std::vector<int>(y.size() + 1, 0));
  for (size_t i = 1; i <= x.size(); i++)
    for (size_t j = 1; j <= y.size(); j++)
      L[i][j] = x[i - 1] == y[j - 1] ? L[i - 1][j - 1] + 1 : std::max(L[i - 1][j], L[i][j - 1]);
  const double l = L[x.size()][y.size()];
  if (l == 0) return 0;
  const double p = l / double(x.size()), r = l / double(y.size());
  return 2 * p * r / (p + r);
}

const std::vector<std::string> kOpenings = {"Once upon a time there was a little girl named Lily",
                                            "Tom and his dog went to the park to play",
                                            "The sun was shining and the birds were singing",
                                            "Sue found a big red ball in the garden"};
}  // namespace

TEST(InstCommon, RougeDistinctKindsAndPrompts) {
  EXPECT_NEAR(rouge_l("a b c d", "a c d e"), 0.75, 1e-12);  // LCS a c d: P = R = 3/4
  EXPECT_NEAR(rouge_l("The cat sat.", "the CAT sat"), 1.0, 1e-12);
  EXPECT_EQ(rouge_l("x y", "z"), 0.0);
  EXPECT_NEAR(rouge_l("one two three four five", "two four six"), rouge_ref("one two three four five", "two four six"),
              1e-12);
  // distinct-2 of {"a b a b", "a b c"}: bigrams ab ba ab ab bc → 3 unique of 5
  EXPECT_NEAR(distinct_n({"a b a b", "a b c"}, 2), 3.0 / 5.0, 1e-12);
  EXPECT_NEAR(distinct_n({"a b a b", "a b c"}, 1), 3.0 / 7.0, 1e-12);
  for (const auto& p : word_problems(60, 3)) {  // the kind agrees with the program's shape
    const ProblemKind k = problem_kind(p);
    const long plus = std::count(p.program.begin(), p.program.end(), '+');
    if (p.program.find('-') != std::string::npos) EXPECT_EQ(k, ProblemKind::Subtract);
    else EXPECT_EQ(k, plus == 1 ? ProblemKind::Add : ProblemKind::TwoStep);
  }
  EXPECT_EQ(parse_kind("two-step"), ProblemKind::TwoStep);
  EXPECT_THROW(parse_kind("divide"), Error);
  EXPECT_EQ(few_shot_prompt({{"q1", " a1"}}, "q2"), "Q: q1\nA: a1\n\nQ: q2\nA:");
  const auto ps = word_problems(40, 5);
  const auto d = pick_demos(ps, ProblemKind::Add, 3, 1, 0);
  EXPECT_LE(d.size(), 3u);
  for (size_t j : d) EXPECT_TRUE(j != 0 && problem_kind(ps[j]) == ProblemKind::Add);
  EXPECT_EQ(std::set<size_t>(d.begin(), d.end()).size(), d.size());
  EXPECT_TRUE(well_formed("How many apples does Lily have?", true, 20));
  EXPECT_FALSE(well_formed("How many apples?", true, 20));             // too short
  EXPECT_FALSE(well_formed("Lily had three red apples.", true, 20));   // not a question
  EXPECT_TRUE(well_formed("Lily had three red apples.", false, 20));
}

// Self-Instruct's filter: every kept instruction is below the ROUGE-L threshold against all instructions before it
// (seeds + earlier kept), and every rejected near-duplicate reaches it — by an independent LCS.
TEST(InstRecipes, SelfInstructKeepsOnlyNovelInstructions) {
  auto m = load_model(builtin_model());
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.prompts = kOpenings;
  ctx.max_new = 24;
  ctx.quiet = true;
  const double thr = 0.2;  // low, so that sampled story lines do collide with the pool
  ctx.opt = KdOptions(nlohmann::json{{"new", 10}, {"rouge", thr}, {"k", 2}, {"tries", 40}});
  KdResult r = run_kd_recipe("self_instruct", ctx);
  const auto& st = r.data.stats;
  EXPECT_EQ(st["kept"].get<long>() + st["malformed"].get<long>() + st["duplicates"].get<long>(), st["tries"].get<long>());
  ASSERT_GT(st["kept"].get<long>(), 0);
  ASSERT_GT(st["duplicates"].get<long>(), 0) << "the filter was never exercised";
  std::vector<std::string> before(kOpenings.begin(), kOpenings.end());
  std::vector<std::string> kept;
  for (const auto& e : r.data.examples)
    if (e.meta["source"] == "generated") kept.push_back(e.prompt);
  ASSERT_EQ(long(kept.size()), st["kept"].get<long>());
  for (size_t i = 0; i < kept.size(); i++) {
    double mx = 0;
    for (const auto& b : before) mx = std::max(mx, rouge_ref(kept[i], b));
    EXPECT_LT(mx, thr) << kept[i];
    before.push_back(kept[i]);
  }
  for (const auto& rej : st["rejected"]) {  // each rejected one overlapped an instruction in the pool of its time
    const size_t n = kOpenings.size() + rej["kept_before"].get<size_t>();
    double mx = 0;
    for (size_t j = 0; j < n; j++) mx = std::max(mx, rouge_ref(rej["text"].get<std::string>(), before[j]));
    EXPECT_GE(mx, thr) << rej["text"];
  }
  // the student's data: every example's target is the teacher's greedy answer to its prompt
  EXPECT_EQ(r.data.examples.back().targets[0].text, complete(*m, r.data.examples.back().prompt, 24));
}

TEST(InstRecipes, LaminiTopicsAndDiversity) {
  auto m = load_model(builtin_model());
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.prompts = kOpenings;
  ctx.max_new = 24;
  ctx.quiet = true;
  ctx.opt = KdOptions(nlohmann::json{{"new", 12}, {"topic", 0.5}});
  KdResult r = run_kd_recipe("lamini", ctx);
  std::vector<InstItem> pool;
  for (const auto& s : kOpenings) pool.push_back({s, false, ""});
  const auto topics = lamini_topics(pool);
  EXPECT_EQ(std::set<std::string>(topics.begin(), topics.end()), (std::set<std::string>{"Lily", "Tom", "Sue"}));
  std::vector<std::string> all(kOpenings.begin(), kOpenings.end());
  int topical = 0;
  for (const auto& e : r.data.examples) {
    if (e.meta["source"] == "seed") continue;
    all.push_back(e.prompt);
    if (e.meta["source"] == "topic") {
      topical++;
      EXPECT_EQ(e.prompt.rfind(e.meta["topic"].get<std::string>(), 0), 0u) << e.prompt;
    }
  }
  EXPECT_GT(topical, 0);
  EXPECT_EQ(r.data.stats["generated"].get<size_t>() + kOpenings.size(), all.size());
  // distinct-2 by a direct count
  std::set<std::string> uniq;
  size_t total = 0;
  for (const auto& t : all) {
    const auto w = words(t);
    for (size_t i = 0; i + 1 < w.size(); i++, total++) uniq.insert(w[i] + " " + w[i + 1]);
  }
  EXPECT_NEAR(r.data.stats["distinct2_all"].get<double>(), double(uniq.size()) / double(total), 1e-12);
}

// Lion's discrimination: the hard instructions of round 1 are exactly the ceil(hard·n) largest gaps between the
// teacher-referee's mean log-likelihood of its own answer and of the (imitation-trained) student's answer.
TEST(InstRecipes, LionPicksLargestGaps) {
  auto m = load_model(builtin_model());
  train::TrainSetup ts;
  ts.drop_layers = {3, 4};
  auto pruned = [&] { return train::TrainModel<float>(*m, ts).to_model(*m); };
  auto student0 = pruned();
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.student = student0.get();
  ctx.prompts = {"Once upon a time", "Tom and his dog", "The sun was", "Sue found a big", "Lily saw a bird",
                 "One day, Ben"};
  ctx.max_new = 16;
  ctx.quiet = true;
  ctx.opt = KdOptions(nlohmann::json{{"rounds", 2}, {"hard", 0.5}, {"new", 2}});
  int calls = 0;
  ctx.finetune = [&](const Model&, const KdSet&) { calls++; return pruned(); };  // stub "imitation"
  KdResult r = run_kd_recipe("lion", ctx);
  EXPECT_EQ(calls, 2);
  ASSERT_TRUE(r.student);
  auto st = pruned();
  std::vector<double> gap;
  for (const auto& p : ctx.prompts) {
    const std::string t = complete(*m, p, 16), s = complete(*st, p, 16);
    const Score a = score(*m, p, t), b = score(*m, p, s);
    gap.push_back(a.sum_logp / a.ntokens - b.sum_logp / b.ntokens);
  }
  std::vector<size_t> order(gap.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gap[a] > gap[b]; });
  std::set<size_t> want(order.begin(), order.begin() + 3);
  const auto& hard = r.data.stats["rounds"][0]["hard_indices"];
  EXPECT_EQ(std::set<size_t>(hard.begin(), hard.end()), want);
  for (size_t i = 0; i < gap.size(); i++) EXPECT_NEAR(r.data.examples[i].meta["gap"].get<double>(), gap[i], 1e-6);
  EXPECT_EQ(lion_hard({0.1, 3.0, 2.0, 3.0}, 0.5), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(lion_hard({1, 2, 3}, 0.1), (std::vector<size_t>{2}));  // ceil: at least one
}

TEST(InstRecipes, IctExamplesHoldSameKindDemosAndTeacherPrediction) {
  auto m = load_model(builtin_model());
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.problems = word_problems(30, 4);
  ctx.max_new = 12;
  ctx.quiet = true;
  ctx.opt = KdOptions(nlohmann::json{{"k", 2}, {"holdout", "add"}, {"demos", "gold"}});
  KdResult meta = run_kd_recipe("meta_ict", ctx);
  std::vector<WordProblem> seen;
  for (const auto& p : ctx.problems)
    if (problem_kind(p) != ProblemKind::Add) seen.push_back(p);
  ASSERT_EQ(meta.data.examples.size(), seen.size());
  for (size_t i = 0; i < seen.size(); i++) {
    const auto& e = meta.data.examples[i];
    EXPECT_NE(e.meta["kind"], "add");
    std::vector<std::pair<std::string, std::string>> demos;
    for (size_t j : e.meta["demos"].get<std::vector<size_t>>()) {
      EXPECT_NE(j, i);
      EXPECT_EQ(problem_kind(seen[j]), problem_kind(seen[i]));
      demos.push_back({seen[j].question, reference_solution(seen[j])});
    }
    long same = 0;  // demonstrations: k, or every other problem of the kind when it has fewer
    for (const auto& p : seen) same += problem_kind(p) == problem_kind(seen[i]);
    EXPECT_EQ(long(demos.size()), std::min(2L, same - 1));
    EXPECT_EQ(e.prompt, few_shot_prompt(demos, seen[i].question));  // lm = 0: demonstrations are context
    ASSERT_EQ(e.targets.size(), 1u);
    EXPECT_EQ(e.targets[0].text, complete(*m, e.prompt, 12, {}, "\n\n"));
  }
  // multitask: every kind, LM weight on each demonstration, the query itself unscored
  ctx.opt = KdOptions(nlohmann::json{{"k", 2}, {"lm", 0.5}});
  KdResult mt = run_kd_recipe("multitask_ict", ctx);
  ASSERT_EQ(mt.data.examples.size(), ctx.problems.size());
  std::set<std::string> kinds;
  for (const auto& e : mt.data.examples) {
    kinds.insert(e.meta["kind"].get<std::string>());
    ASSERT_EQ(e.targets.size(), 4u) << "want k = 2 demonstrations of the kind";
    EXPECT_FLOAT_EQ(e.targets[0].weight, 0.5f);
    EXPECT_FLOAT_EQ(e.targets[1].weight, 0.5f);
    EXPECT_FLOAT_EQ(e.targets[2].weight, 0.0f);
    EXPECT_FLOAT_EQ(e.targets[3].weight, 1.0f);
    std::string text = e.prompt;
    for (size_t s = 0; s + 1 < e.targets.size(); s++) text += e.targets[s].text;
    EXPECT_EQ(e.targets[3].text, complete(*m, text, 12, {}, "\n\n"));  // the prediction follows the whole prompt
  }
  EXPECT_EQ(kinds.size(), 3u);
  ctx.problems.clear();
  ctx.prompts = kOpenings;
  EXPECT_THROW(run_kd_recipe("meta_ict", ctx), Error);  // needs the task
}

// AICD: each sequence's targets are the teacher's CoT for every demonstration given the ones before it (weight w)
// and for the query (weight 1); the unscored questions between them rebuild the few-shot text.
TEST(InstRecipes, AicdSupervisesEveryInContextCot) {
  auto m = load_model(builtin_model());
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.problems = word_problems(9, 6);
  ctx.max_new = 10;
  ctx.quiet = true;
  ctx.opt = KdOptions(nlohmann::json{{"k", 2}, {"w", 0.25}});
  KdResult r = run_kd_recipe("aicd", ctx);
  ASSERT_EQ(r.data.examples.size(), 9u);
  for (const auto& e : r.data.examples) {
    const auto seq = e.meta["sequence"].get<std::vector<size_t>>();
    const size_t n = seq.size();
    ASSERT_EQ(e.targets.size(), 2 * n - 1);
    std::vector<std::pair<std::string, std::string>> solved;
    for (size_t j = 0; j < n; j++) {
      const auto& p = ctx.problems[seq[j]];
      EXPECT_EQ(problem_kind(p), problem_kind(ctx.problems[seq.back()]));
      const std::string cot = complete(*m, few_shot_prompt(solved, p.question), 10, {}, "\n\n");
      const KdSegment& g = e.targets[2 * j];
      EXPECT_EQ(g.text, cot);
      EXPECT_FLOAT_EQ(g.weight, j + 1 == n ? 1.0f : 0.25f);
      if (j + 1 < n) {
        EXPECT_FLOAT_EQ(e.targets[2 * j + 1].weight, 0.0f);
      }
      solved.push_back({p.question, cot});
    }
    std::string text = e.prompt;
    for (const auto& g : e.targets) text += g.text;
    solved.pop_back();
    EXPECT_EQ(text, few_shot_prompt(solved, ctx.problems[seq.back()].question) + e.targets.back().text);
  }
}

// Chain-of-thought distillation recipes, second group (src/distill/{pad,socratic,lmtwa,dra,tdig,
// selective_reflection}.cpp): each recipe's defining rule against an independent computation on small inputs —
// PaD drops exactly the samples whose program fails or disagrees with the gold answer and trains on the executed
// value; Socratic CoT's sub-steps execute and chain into the answer; LMTWA explains exactly the budget fraction with
// the largest student likelihood gain; DRA's feedback covers exactly the student's mistakes the teacher can fix;
// TDIG keeps exactly the steps before the first wrong one, at its own weight and without EOS; Selective
// Reflection keeps the version the student's IFD prefers. The CLI runs one recipe end to end.
#include <algorithm>
#include <cmath>
#include <numeric>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "distill/cot2_common.h"
#include "distill/dra.h"
#include "distill/lmtwa.h"
#include "distill/pad.h"
#include "distill/selective_reflection.h"
#include "distill/socratic.h"
#include "distill/tdig.h"
#include "testutil.h"
#include "train/tmodel.h"

using namespace lmp;
using namespace lmp::distill;

namespace {
std::string builtin_model() { return std::string(LMP_SOURCE_DIR) + "/models/stories260K"; }

WordProblem lily() {  // 3 + 2 = 5
  WordProblem p;
  p.question = "Lily had 3 apples. Tom gave Lily 2 more apples. How many apples does Lily have now?";
  p.rationale = "Lily had 3 apples. Lily got 2 more. 3 + 2 = 5.";
  p.program = "3 + 2";
  p.answer = 5;
  return p;
}

// The independent mean NLL: −Σ log p / n straight from score()'s sum (not through mean_nll).
double nll(const Model& m, const std::string& c, const std::string& t) {
  const Score s = score(m, c, t);
  return -s.sum_logp / s.ntokens;
}
}  // namespace

TEST(Cot2Common, SentencesEquationsPrograms) {
  const std::string t = " Lily had 3 apples. She got 2 more and 4 more. 3 + 2 + 4 = 9. The answer is 9.";
  const auto s = sentences(t);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(std::accumulate(s.begin(), s.end(), std::string()), t);
  EXPECT_FALSE(find_equation(s[0]).has_value());
  const auto e = find_equation(s[2]);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->lhs, "3 + 2 + 4");
  EXPECT_EQ(e->rhs, 9);
  EXPECT_EQ(find_equation("so apples 7 - 3 = 4.")->lhs, "7 - 3");
  EXPECT_FALSE(find_equation("x = 4.").has_value());
  EXPECT_FALSE(find_equation("3 + 1 = apples").has_value());
  EXPECT_EQ(solution_program(" 1 + 1 = 2. 2 + 5 = 7. The answer is 7."), "2 + 5");
  EXPECT_FALSE(solution_program(" no numbers here.").has_value());
  const auto [rat, ans] = split_solution(t);
  EXPECT_EQ(rat + ans, t);
  EXPECT_EQ(ans, " The answer is 9.");
}

// PaD's filter: a sample survives iff its program executes to the gold answer; the stated answer does not matter.
TEST(Pad, DropsExactlyTheSamplesWhoseProgramFailsOrDisagrees) {
  const WordProblem p = lily();
  struct Case {
    std::string text;
    PadVerdict want;
  };
  const std::vector<Case> cases = {
      {" Lily had 3 apples. She got 2 more. 3 + 2 = 5. The answer is 5.", PadVerdict::Kept},
      {" Lily had 3 apples. She got 2 more. 3 + 2 = 6. The answer is 6.", PadVerdict::Kept},  // executed: 5
      {" Lily had 3 apples. 3 + = 5. The answer is 5.", PadVerdict::ProgramFails},
      {" Lily had 3 apples. (3 + 2 = 5. The answer is 5.", PadVerdict::ProgramFails},
      {" Lily had 3 apples. 2 + 2 = 5. The answer is 5.", PadVerdict::WrongAnswer},  // right text, wrong program
      {" Lily had 3 apples. The answer is 5.", PadVerdict::NoProgram},
  };
  for (const Case& c : cases) {
    const PadCheck k = pad_check(c.text, p);
    EXPECT_EQ(int(k.verdict), int(c.want)) << c.text;
    // independent: the program is the text between the last sentence start and '=', run by eval_program
    const size_t eq = c.text.rfind('=');
    if (eq == std::string::npos) continue;
    const size_t dot = c.text.rfind('.', eq);
    std::string prog = c.text.substr(dot + 1, eq - dot - 1);
    prog = prog.substr(prog.find_first_not_of(' '));
    prog = prog.substr(0, prog.find_last_not_of(' ') + 1);
    const auto v = eval_program(prog);
    EXPECT_EQ(k.verdict == PadVerdict::Kept, v.has_value() && *v == p.answer) << c.text;
    EXPECT_EQ(k.verdict == PadVerdict::ProgramFails, !v.has_value()) << c.text;
  }
  // a kept example trains the program, then the EXECUTED value (not the teacher's "6")
  const KdExample e = pad_example(task_prompt(p), pad_check(cases[1].text, p), 0.0f);
  ASSERT_EQ(e.targets.size(), 2u);
  EXPECT_EQ(e.targets[0].text, " 3 + 2 =");
  EXPECT_EQ(e.targets[1].text, " 5. The answer is 5.");
  EXPECT_FLOAT_EQ(e.targets[1].weight, 0.0f);
  EXPECT_EQ(pad_student_program(" 4 + 1 = 5. The answer is 5."), "4 + 1");
  EXPECT_EQ(pad_student_program(" 4 + 1\nQ: ..."), "4 + 1");
}

TEST(Socratic, SubStepsExecuteAndChainIntoTheAnswer) {
  for (const auto& p : word_problems(30, 5)) {
    const auto steps = socratic_decompose(p.program);
    ASSERT_FALSE(steps.empty()) << p.program;
    // one step per operator of the program
    const long ops = std::count_if(p.program.begin(), p.program.end(), [](char c) { return c == '+' || c == '-'; });
    EXPECT_EQ(long(steps.size()), ops) << p.program;
    long prev = -1;
    for (size_t k = 0; k < steps.size(); k++) {
      const auto e = find_equation(steps[k].answer);
      ASSERT_TRUE(e.has_value());
      EXPECT_EQ(eval_program(e->lhs), e->rhs);                             // each sub-answer is right
      EXPECT_EQ(steps[k].question, "What is " + e->lhs + "?");             // and answers its sub-question
      if (k > 0) EXPECT_EQ(e->lhs.substr(0, e->lhs.find(' ')), std::to_string(prev));  // chains the previous result
      prev = e->rhs;
    }
    EXPECT_EQ(prev, p.answer);
    const auto roles = socratic_examples(p, steps, "roles");
    ASSERT_EQ(roles.size(), steps.size() + 1);  // one generator example + one answerer example per sub-question
    EXPECT_EQ(roles[0].prompt, socratic_qg_prompt(p));
    EXPECT_EQ(extract_answer(roles.back().targets[0].text), p.answer);
    EXPECT_NE(roles.back().prompt.find(steps.back().question), std::string::npos);
    if (steps.size() > 1) EXPECT_NE(roles.back().prompt.find(steps[0].answer), std::string::npos);
    const auto uni = socratic_examples(p, steps, "unified");
    ASSERT_EQ(uni.size(), 1u);
    EXPECT_EQ(uni[0].prompt, task_prompt(p));
    EXPECT_EQ(extract_answer(uni[0].targets[0].text), p.answer);
  }
  EXPECT_EQ(socratic_decompose("2 * (3 + 1)").size(), 1u);
  EXPECT_TRUE(socratic_decompose("2 +").empty());
}

// LMTWA: the explained problems are exactly the ceil(budget · n) with the largest student gain
// log p(gold | q + rationale) − log p(gold | q).
TEST(Lmtwa, ExplainsExactlyTheTopBudgetByStudentGain) {
  auto m = load_model(builtin_model());
  const auto ps = word_problems(7, 11);
  std::vector<KdItem> items;
  for (const auto& p : ps) items.push_back({task_prompt(p), &p});
  std::vector<std::string> sols;
  for (size_t i = 0; i < ps.size(); i++)
    sols.push_back(i == 3 ? " I do not know." : i % 2 ? reference_solution(ps[i]) : " Once upon a time. The answer is 1.");
  const KdSet s = lmtwa_build(*m, items, sols, 0.5);
  ASSERT_EQ(s.examples.size(), 6u);  // item 3 states no answer
  std::vector<double> u;
  std::vector<size_t> idx;
  for (size_t i = 0; i < ps.size(); i++) {
    if (i == 3) continue;
    const std::string rat = sols[i].substr(0, sols[i].rfind(" The answer is"));
    const std::string gold = " The answer is " + std::to_string(ps[i].answer) + ".";
    u.push_back(score(*m, task_prompt(ps[i]) + rat, gold).sum_logp - score(*m, task_prompt(ps[i]), gold).sum_logp);
    idx.push_back(i);
  }
  std::vector<size_t> order(u.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return u[a] > u[b]; });
  ASSERT_GT(u[order[2]], u[order[3]]);  // no tie at the budget boundary
  int explained = 0;
  for (size_t j = 0; j < u.size(); j++) {
    const bool top = std::find(order.begin(), order.begin() + 3, j) != order.begin() + 3;
    const KdExample& e = s.examples[j];
    EXPECT_EQ(e.prompt, items[idx[j]].prompt);
    EXPECT_EQ(e.meta["explained"].get<bool>(), top) << j;
    EXPECT_NEAR(e.meta["utility"].get<double>(), u[j], 1e-6);
    ASSERT_EQ(e.targets.size(), top ? 2u : 1u);
    EXPECT_EQ(e.targets.back().role, "answer");
    EXPECT_EQ(e.targets.back().text.rfind(" The answer is", 0), 0u);
    explained += top;
  }
  EXPECT_EQ(explained, 3);
  EXPECT_EQ(lmtwa_select({1, 3, 2}, 0.0), std::vector<bool>({false, false, false}));
  EXPECT_EQ(lmtwa_select({1, 3, 2}, 1.0), std::vector<bool>({true, true, true}));
}

// DRA: feedback exactly for the problems the student got wrong and the teacher got right.
TEST(Dra, FeedbackCoversExactlyTheStudentsFixableMistakes) {
  const auto ps = word_problems(8, 3);
  std::vector<KdItem> items;
  for (const auto& p : ps) items.push_back({task_prompt(p), &p});
  std::vector<std::string> student, teacher;
  std::vector<size_t> want;
  for (size_t i = 0; i < ps.size(); i++) {
    const bool s_right = i % 2 == 0, t_right = i % 3 != 0;
    student.push_back(s_right ? reference_solution(ps[i]) : " " + ps[i].program + " = 99. The answer is 99.");
    teacher.push_back(t_right ? reference_solution(ps[i]) : " I think. The answer is 1000.");
    if (!s_right && t_right) want.push_back(i);
  }
  for (bool reflect : {false, true}) {
    const auto f = dra_feedback(items, student, teacher, reflect, 2);
    ASSERT_EQ(f.size(), want.size() * (reflect ? 2 : 1));
    for (size_t k = 0; k < want.size(); k++) {
      const KdExample& e = f[k * (reflect ? 2 : 1)];
      EXPECT_EQ(e.prompt, items[want[k]].prompt);
      EXPECT_EQ(e.targets[0].text, reference_solution(ps[want[k]]));
      EXPECT_EQ(e.meta["round"], 2);
      if (reflect) {
        const KdExample& r = f[k * 2 + 1];
        EXPECT_EQ(r.prompt, dra_reflection_prompt(items[want[k]].prompt, student[want[k]]));
        EXPECT_NE(r.prompt.find("= 99"), std::string::npos);  // the student's own wrong attempt is in view
        EXPECT_EQ(r.targets[0].text, reference_solution(ps[want[k]]));
      }
    }
  }
}

// TDIG: a wrong sample contributes exactly its steps before the first wrong one, at neg_weight, with no EOS learned.
TEST(Tdig, NegativeSamplesKeepExactlyTheStepsBeforeTheFirstError) {
  const WordProblem p = lily();
  const KdItem it{task_prompt(p), &p};
  EXPECT_EQ(tdig_correct_prefix(" Lily had 3 apples. She got 2 more. 3 + 2 = 6. The answer is 6.", p),
            " Lily had 3 apples. She got 2 more.");  // arithmetic error
  EXPECT_EQ(tdig_correct_prefix(" Lily had 3 apples. She got 4 more. 3 + 4 = 7. The answer is 7.", p),
            " Lily had 3 apples.");  // a number not in the question
  EXPECT_EQ(tdig_correct_prefix(" Lily had 3 apples. She got 2 more. 3 + 2 = 5. The answer is 7.", p),
            " Lily had 3 apples. She got 2 more. 3 + 2 = 5.");  // only the answer sentence is wrong
  EXPECT_EQ(tdig_correct_prefix(" Lily had 3 apples. 3 - 2 = 1. The answer is 1.", p),
            " Lily had 3 apples.");  // right arithmetic, wrong final result
  EXPECT_EQ(tdig_correct_prefix(" Lily had 3 apples. She was happy. 3 + 2 = 5. The answer is 6.", p),
            " Lily had 3 apples.");  // off-task sentence (no quantity)
  EXPECT_FALSE(tdig_example(it, " 3 - 2 = 1. The answer is 1.", 0.3f).has_value());
  EXPECT_FALSE(tdig_example(it, " Once upon a time there was a cat. The answer is 2.", 0.3f).has_value());
  EXPECT_FALSE(tdig_example(it, " Lily had 3 apples. She got 2 more. 3 + 2 = 6. The answer is 6.", 0.0f).has_value());
  EXPECT_TRUE(tdig_example(it, reference_solution(p), 0.0f).has_value());
  const auto pos = tdig_example(it, reference_solution(p), 0.3f);
  ASSERT_TRUE(pos.has_value());
  ASSERT_EQ(pos->targets.size(), 1u);
  EXPECT_FLOAT_EQ(pos->targets[0].weight, 1.0f);
  const auto neg = tdig_example(it, " Lily had 3 apples. She got 2 more. 3 + 2 = 6. The answer is 6.", 0.3f);
  ASSERT_TRUE(neg.has_value());
  // in the token stream: prompt unscored, the prefix's tokens at 0.3, and the EOS after it unscored
  auto m = load_model(builtin_model());
  const Tokenizer& tok = m->tokenizer();
  KdSet s;
  s.recipe = "tdig";
  s.examples = {*neg};
  const train::TokenStream st = kd_stream(tok, s);
  // the prefix's tokens: what the prompt's text gains with it (kd_stream encodes each example as one text)
  const auto np = tok.encode(it.prompt, true).size(),
             nt = tok.encode(it.prompt + " Lily had 3 apples. She got 2 more.", true).size() - np;
  ASSERT_EQ(st.ids.size(), np + nt + 1);
  for (size_t i = 0; i < st.ids.size(); i++) EXPECT_FLOAT_EQ(st.weight[i], i < np || i == np + nt ? 0.0f : 0.3f) << i;
  EXPECT_EQ(st.ids.back(), tok.eos_id());
}

// Selective Reflection: the student keeps the version with the higher IFD = L(r|q)/L(r) among those below 1.
TEST(SelectiveReflection, StudentKeepsTheVersionItsIfdPrefers) {
  EXPECT_EQ(sr_choose({0.9, 0.95}, "ifd"), 1);
  EXPECT_EQ(sr_choose({0.95, 0.95}, "ifd"), 0);
  EXPECT_EQ(sr_choose({1.2, 0.5}, "ifd"), 1);
  EXPECT_EQ(sr_choose({1.1, 1.3}, "ifd"), -1);
  EXPECT_EQ(sr_choose({0.5, 0.4}, "rifd"), 1);
  auto m = load_model(builtin_model());
  const std::vector<std::string> prompts = {"Once upon a time", "Lily went to the park", "The cat was", "Tom had a"};
  std::vector<KdItem> items;
  for (const auto& p : prompts) items.push_back({p, nullptr});
  const std::vector<std::string> orig = {" there was a little girl.", " and she saw a big dog.", " very happy.",
                                         " red ball."};
  const std::vector<std::string> refl = {" there was a big bird named Sam.", " with her mom.", " sad and alone.",
                                         " toy car that he loved."};
  for (const std::string sel : {"ifd", "rifd"}) {
    const KdSet s = sr_build(*m, items, orig, refl, sel);
    size_t j = 0;
    int kept_reflected = 0;
    for (size_t i = 0; i < items.size(); i++) {
      double st[2];
      for (int k = 0; k < 2; k++) {
        const std::string& r = k ? refl[i] : orig[i];
        st[k] = sel == "ifd" ? nll(*m, prompts[i], r) / nll(*m, "", r) : nll(*m, r + "\n", prompts[i]) / nll(*m, "", prompts[i]);
      }
      int want = -1;
      for (int k = 0; k < 2; k++)
        if (st[k] < 1 && (want < 0 || (sel == "ifd" ? st[k] > st[want] : st[k] < st[want]))) want = k;
      if (want < 0) continue;
      ASSERT_LT(j, s.examples.size());
      EXPECT_EQ(s.examples[j].prompt, prompts[i]);
      EXPECT_EQ(s.examples[j].targets[0].text, want ? refl[i] : orig[i]) << sel << " " << i;
      EXPECT_NEAR(s.examples[j].meta[sel][want].get<double>(), st[want], 1e-9);
      kept_reflected += want;
      j++;
    }
    EXPECT_EQ(j, s.examples.size());
    EXPECT_GE(s.examples.size(), 2u) << sel;  // the comparison above saw real choices
    EXPECT_EQ(s.stats["chose_reflected"], kept_reflected);
  }
}

// End to end: selective_reflection through `lmpress train distill` (any teacher works), and PaD with a teacher
// that writes no programs stops with one line naming the recipe.
TEST(KdCot2Cli, RecipesRunFromTheCli) {
  const std::string dir = test::temp_dir("kd_cot2"), m = builtin_model();
  const std::string prompts = dir + "/prompts.txt";
  const std::string p = "Once upon a time\nLily went to the park\nThe cat was\n";
  write_file_atomic(prompts, p.data(), p.size());
  std::string out, err;
  int rc = test::run_lmpress(fmt::format("train distill --teacher {} --student {} --drop-layers 4 --kd-recipe "
                                         "selective_reflection --kd-set select=ifd --prompts {} --max-new-tokens 16 "
                                         "--kd-out {}/d.jsonl --steps 2 --batch 2 --seqlen 16 --json -o {}/s",
                                         m, m, prompts, dir, dir), &out, &err);
  ASSERT_EQ(rc, 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["kd"]["recipe"], "selective_reflection");
  EXPECT_EQ(j["kd"]["stats"]["teacher_calls"], 6);
  const KdSet s = load_kd_set(dir + "/d.jsonl");
  EXPECT_EQ(long(s.examples.size()), j["kd"]["examples"].get<long>());
  // the student that selected is the depth-pruned one (--drop-layers 4), not the full source model
  ASSERT_FALSE(s.examples.empty());
  auto full = load_model(m);
  train::TrainSetup setup;
  setup.drop_layers = {4};
  auto pruned = train::TrainModel<float>(*full, setup).to_model(*full);
  ASSERT_EQ(pruned->cfg.n_layers, 4);
  const KdExample& e0 = s.examples[0];
  const double kept = e0.meta["ifd"][e0.meta["chosen"] == "reflected" ? 1 : 0].get<double>();
  EXPECT_NEAR(kept, ifd_score(*pruned, e0.prompt, e0.targets[0].text), 1e-9);
  EXPECT_GT(std::abs(kept - ifd_score(*full, e0.prompt, e0.targets[0].text)), 1e-6);
  // the same recipe as a stage of `lmpress compress`, with a setting
  const std::string recipe = dir + "/r.json";
  const nlohmann::json r = {{"stages", {{{"modifier", "train"}, {"mode", "distill"}, {"teacher", m},
                                         {"kd-recipe", "selective_reflection"}, {"kd-set", "select=rifd"},
                                         {"prompts", prompts}, {"max-new-tokens", 16}, {"steps", 2}, {"batch", 2},
                                         {"seqlen", 16}, {"quiet", true}}}}};
  const std::string rs = r.dump();
  write_file_atomic(recipe, rs.data(), rs.size());
  rc = test::run_lmpress(fmt::format("compress --model {} --recipe {} -o {}/c", m, recipe, dir), nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(load_model(dir + "/c")->recipe["stages"][0]["kd-recipe"], "selective_reflection");
  rc = test::run_lmpress(fmt::format("train distill --teacher {} --student {} --drop-layers 4 --kd-recipe pad --task "
                                     "arith --task-n 3 --steps 1 --batch 1 --seqlen 8 -o {}/s2", m, m, dir),
                         nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("pad"), std::string::npos) << err;
}

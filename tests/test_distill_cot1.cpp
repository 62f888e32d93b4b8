// Chain-of-thought distillation recipes, group 1 (src/distill/cot_*.cpp, step_by_step, mt_cot, sslm, scott): each
// recipe's defining rule against an independent computation — Magister keeps exactly the right CoTs, Fine-tune-CoT
// keeps the distinct right samples of K, step-by-step's trained objective is L_label + λ L_rationale, MT-CoT's CROP
// falls back to rationalization, SSLM keeps the best dev-accuracy stage, SCOTT's decoder picks the contrastive
// argmax among plausible tokens and its counterfactual examples score only the perturbed answer — plus the CLI and
// recipe-stage paths on the built-in stories260K.
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "distill/cot_recipes.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/kv_cache.h"
#include "testutil.h"
#include "train/losses.h"
#include "train/tmodel.h"

namespace fs = std::filesystem;
using namespace lmp;
using namespace lmp::distill;

namespace {
std::string builtin_model() { return std::string(LMP_SOURCE_DIR) + "/models/stories260K"; }

// Index of the problem whose task prompt (or answer-given prompt) `prompt` is.
size_t which(const std::vector<WordProblem>& ps, const std::string& prompt) {
  for (size_t i = 0; i < ps.size(); i++)
    if (prompt.find(ps[i].question) != std::string::npos) return i;
  ADD_FAILURE() << "unknown prompt " << prompt;
  return 0;
}

std::string wrong_solution(const WordProblem& p) { return " " + p.rationale + answer_sentence(p.answer + 1); }

// −log p(target ids + EOS | BOS + prompt) by one full forward of the inference engine.
double nll_with_eos(const Model& m, const std::string& prompt, const std::string& target) {
  const Tokenizer& tok = m.tokenizer();
  // the target's tokens are what prompt + target gains over the prompt's own encoding (kd_stream's rule)
  const std::vector<int> pids = tok.encode(prompt, true);
  std::vector<int> ids = tok.encode(prompt + target, true);
  size_t np = 0;
  while (np < pids.size() && pids[np] == ids[np]) np++;
  ids.push_back(tok.eos_id());
  const int n = int(ids.size()), V = m.cfg.vocab;
  KVCache cache(m.cfg, n);
  Forward f(m);
  std::vector<float> z(size_t(n) * V);
  f.tokens(ids.data(), n, cache, z.data());
  double nll = 0;
  for (size_t i = np; i < size_t(n); i++) {
    const float* r = z.data() + (i - 1) * V;
    double mx = r[0], se = 0;
    for (int j = 1; j < V; j++) mx = std::max(mx, double(r[j]));
    for (int j = 0; j < V; j++) se += std::exp(double(r[j]) - mx);
    nll -= double(r[ids[i]]) - mx - std::log(se);
  }
  return nll;
}
}  // namespace

TEST(CotCommon, RationaleAnswerPromptAndPerturbation) {
  EXPECT_EQ(cot_rationale("Lily had 3. 3 + 2 = 5. The answer is 5."), " Lily had 3. 3 + 2 = 5.");
  EXPECT_EQ(cot_rationale("  no answer here"), " no answer here");
  EXPECT_EQ(answer_segment(12), " The answer is 12.");
  const auto ps = word_problems(3, 1);
  EXPECT_EQ(answer_given_prompt(ps[0], 7), "Q: " + ps[0].question + " The answer is 7.\nA:");
  std::set<long> seen;
  for (uint64_t s = 0; s < 200; s++) {
    const long g = long(s % 5), w = perturbed_answer(g, s);
    EXPECT_NE(w, g);
    EXPECT_GE(w, 0);
    EXPECT_LE(std::labs(w - g), 3);
    seen.insert(w - g);
  }
  EXPECT_GE(seen.size(), 4u);  // both directions and several distances occur
}

TEST(CotMagister, KeepsExactlyTheTeacherCoTsWithTheRightAnswer) {
  const auto ps = word_problems(30, 5);
  int calls = 0;
  CotWriter teacher = [&](const std::string& prompt, const SamplingOptions& so) {
    calls++;
    EXPECT_EQ(so.temperature, 0.f);  // greedy
    const size_t i = which(ps, prompt);
    if (i % 5 == 0) return std::string(" I do not know.");
    return i % 3 == 0 ? wrong_solution(ps[i]) : reference_solution(ps[i]);
  };
  KdSet s = magister_set(ps, teacher);
  EXPECT_EQ(calls, 30);
  std::vector<size_t> want;
  for (size_t i = 0; i < ps.size(); i++)
    if (i % 5 != 0 && i % 3 != 0) want.push_back(i);
  ASSERT_EQ(s.examples.size(), want.size());
  for (size_t k = 0; k < want.size(); k++) {
    EXPECT_EQ(s.examples[k].prompt, task_prompt(ps[want[k]]));
    ASSERT_EQ(s.examples[k].targets.size(), 1u);
    EXPECT_EQ(s.examples[k].targets[0].text, cot_segment(reference_solution(ps[want[k]])));
  }
  EXPECT_EQ(s.stats["written"], 30);
  EXPECT_EQ(s.stats["kept"], want.size());
}

TEST(FinetuneCot, KeepsTheDistinctRightSamplesOfK) {
  const auto ps = word_problems(12, 9);
  const int K = 5;
  struct Call {
    size_t item;
    uint64_t seed;
    std::string out;
  };
  std::vector<Call> log;
  CotWriter teacher = [&](const std::string& prompt, const SamplingOptions& so) {
    EXPECT_FLOAT_EQ(so.temperature, 0.8f);
    const size_t i = which(ps, prompt);
    std::string out;
    switch (so.seed % 4) {  // two right phrasings (repeats likely), one wrong, one without an answer
      case 0: out = reference_solution(ps[i]); break;
      case 1: out = " So " + ps[i].program + answer_sentence(ps[i].answer); break;
      case 2: out = wrong_solution(ps[i]); break;
      default: out = " hmm";
    }
    log.push_back({i, so.seed, out});
    return out;
  };
  KdSet s = finetune_cot_set(ps, teacher, K, 0.8, 42);
  ASSERT_EQ(log.size(), ps.size() * K);
  std::map<size_t, std::set<uint64_t>> seeds;
  std::map<size_t, std::set<std::string>> right;
  for (const auto& c : log) {
    seeds[c.item].insert(c.seed);
    const auto a = extract_answer(c.out);
    if (a && *a == ps[c.item].answer) right[c.item].insert(cot_segment(c.out));
  }
  size_t want = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    EXPECT_EQ(seeds[i].size(), size_t(K)) << "the K samples of a problem use distinct seeds";
    want += right[i].size();
  }
  ASSERT_EQ(s.examples.size(), want);
  std::map<size_t, std::set<std::string>> got;
  for (const auto& e : s.examples) {
    const size_t i = which(ps, e.prompt);
    EXPECT_TRUE(got[i].insert(e.targets[0].text).second) << "duplicate kept";
  }
  EXPECT_EQ(got, right);
  EXPECT_EQ(s.stats["written"], long(ps.size()) * K);
}

// The trained objective (the trainer's weighted cross-entropy over each example's token stream, summed) equals
// L_label + λ · L_rationale computed by the inference engine on the two targets (each with its EOS).
TEST(StepByStep, TrainedObjectiveIsLabelLossPlusLambdaRationaleLoss) {
  auto m = load_model(builtin_model());
  const Tokenizer& tok = m->tokenizer();
  const auto ps = word_problems(3, 11);
  const double lambda = 0.3;
  CotWriter teacher = [&](const std::string& prompt, const SamplingOptions&) {
    return reference_solution(ps[which(ps, prompt)]);
  };
  KdSet s = step_by_step_set(ps, teacher, lambda, "", "[rationale] ");
  ASSERT_EQ(s.examples.size(), 2 * ps.size());
  train::TrainModel<float> tm(*m, train::TrainSetup{});
  const int V = m->cfg.vocab;
  double objective = 0;
  for (const KdExample& e : s.examples) {
    KdSet one;
    one.examples = {e};
    const train::TokenStream st = kd_stream(tok, one);
    const int T = int(st.ids.size()) - 1;
    std::vector<int> tgt(size_t(T), -1);
    std::vector<float> w(size_t(T), 0.f);
    int scored = 0;
    for (int t = 0; t < T; t++)
      if (st.weight[size_t(t) + 1] > 0) tgt[size_t(t)] = st.ids[size_t(t) + 1], w[size_t(t)] = st.weight[size_t(t) + 1], scored++;
    tm.forward(st.ids.data(), 1, T);
    std::vector<float> d(size_t(T) * V);
    objective += scored * train::cross_entropy(d.data(), tm.logits().data(), tgt.data(), T, V, w.data());
  }
  double want = 0;
  for (const WordProblem& p : ps) {
    // segments carry their leading space: prompt and target are one text ("A:" + " Lily had ...")
    const std::string rationale = " " + p.rationale;
    want += nll_with_eos(*m, task_prompt(p), " The answer is " + std::to_string(p.answer) + ".") +
            lambda * nll_with_eos(*m, "[rationale] " + task_prompt(p), rationale);
  }
  EXPECT_NEAR(objective, want, 1e-4 * want);
  // the label task is the plain task prompt; the rationale task is told apart by its prefix
  EXPECT_EQ(s.examples[0].prompt, task_prompt(ps[0]));
  EXPECT_EQ(s.examples[1].prompt, "[rationale] " + task_prompt(ps[0]));
  EXPECT_EQ(s.examples[1].targets[0].text, " " + ps[0].rationale);
}

TEST(MtCot, CropRationalizesWrongCoTsAndWeighsTheTwoTasks) {
  const auto ps = word_problems(12, 13);
  const double alpha = 0.25;
  int calls = 0;
  CotWriter teacher = [&](const std::string& prompt, const SamplingOptions&) {
    calls++;
    const size_t i = which(ps, prompt);
    const bool given = prompt.find("The answer is") != std::string::npos;
    if (!given) return i % 3 == 0 ? reference_solution(ps[i]) : wrong_solution(ps[i]);
    EXPECT_EQ(prompt, answer_given_prompt(ps[i], ps[i].answer));
    return i % 3 == 1 ? " Because " + ps[i].program + answer_sentence(ps[i].answer) : wrong_solution(ps[i]);
  };
  KdSet s = mt_cot_set(ps, teacher, alpha, "[answer] ");
  EXPECT_EQ(calls, 12 + 8);  // every problem once, the 8 wrong ones again with the answer given
  size_t k = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    if (i % 3 == 2) continue;  // still wrong after rationalization: dropped
    ASSERT_LT(k + 1, s.examples.size());
    const KdExample &ans = s.examples[k], &cot = s.examples[k + 1];
    k += 2;
    EXPECT_EQ(ans.prompt, "[answer] " + task_prompt(ps[i]));
    ASSERT_EQ(ans.targets.size(), 1u);
    EXPECT_EQ(ans.targets[0].text, answer_segment(ps[i].answer));
    EXPECT_FLOAT_EQ(ans.targets[0].weight, 0.25f);
    EXPECT_EQ(cot.prompt, task_prompt(ps[i]));
    ASSERT_EQ(cot.targets.size(), 2u);
    EXPECT_EQ(cot.targets[0].text, i % 3 == 0 ? " " + ps[i].rationale : " Because " + ps[i].program);
    EXPECT_EQ(cot.targets[1].text, answer_segment(ps[i].answer));
    EXPECT_FLOAT_EQ(cot.targets[0].weight, 0.75f);
    EXPECT_FLOAT_EQ(cot.targets[1].weight, 0.75f);
    EXPECT_EQ(cot.meta["source"], i % 3 == 0 ? "cot" : "rationalization");
  }
  EXPECT_EQ(k, s.examples.size());
  EXPECT_EQ(s.stats["rationalized"], 4);
  EXPECT_EQ(s.stats["dropped"], 4);
}

TEST(Sslm, TrainsInStagesAndKeepsTheBestDevAccuracy) {
  auto base = load_model(builtin_model());
  KdSet data;
  data.examples.push_back({"Q: x\nA:", {{" y", 1.f, "cot"}}, nlohmann::json::object()});
  const std::vector<double> acc = {0.9, 0.3, 0.6, 0.6, 0.4};  // stage 0 (before) is never chosen
  std::vector<int> trained_from;
  Finetune ft = [&](const Model& s, const KdSet& d) {
    EXPECT_EQ(d.examples.size(), 1u);
    trained_from.push_back(s.recipe.is_object() ? s.recipe["stage"].get<int>() : 0);
    auto m = load_model(builtin_model());
    m->recipe = {{"stage", int(trained_from.size())}};
    return m;
  };
  auto eval = [&](const Model& m) {
    SslmEval e;
    const int k = m.recipe.is_object() ? m.recipe["stage"].get<int>() : 0;
    e.dev_accuracy = acc[size_t(k)];
    e.generic_ppl = 10 + k;
    return e;
  };
  nlohmann::json log = nlohmann::json::array();
  auto best = sslm_stages(*base, data, 4, ft, eval, log);
  EXPECT_EQ(trained_from, (std::vector<int>{0, 1, 2, 3}));  // each stage continues from the previous one
  EXPECT_EQ(best->recipe["stage"], 2);                      // best dev accuracy, earliest of the tie
  ASSERT_EQ(log.size(), 5u);
  int selected = 0;
  for (size_t k = 0; k < log.size(); k++) {
    EXPECT_EQ(log[k]["stage"], int(k));
    EXPECT_DOUBLE_EQ(log[k]["dev_accuracy"].get<double>(), acc[k]);
    EXPECT_DOUBLE_EQ(log[k]["generic_ppl"].get<double>(), 10.0 + double(k));
    selected += log[k].value("selected", false);
  }
  EXPECT_EQ(selected, 1);
  EXPECT_TRUE(log[2].value("selected", false));
}

// Each token of SCOTT's decode is the argmax of log p(t|pos) + γ (log p(t|pos) − log p(t|neg)) over the tokens with
// p(t|pos) ≥ plaus · max p(·|pos), recomputed here by full forwards of both prefixes (no shared KV cache);
// with plaus = 1 only the top token is plausible, so the decode is the greedy one.
TEST(Scott, ContrastiveDecodeIsThePlausibleContrastArgmax) {
  auto m = load_model(builtin_model());
  const Tokenizer& tok = m->tokenizer();
  const std::string pos = "Once upon a time, there was a little dog", neg = "Once upon a time, there was a big cat";
  const double plaus = 0.1, gamma = 2.0;
  const auto out = contrastive_decode(*m, pos, neg, 14, gamma, plaus);
  ASSERT_FALSE(out.empty());
  const int V = m->cfg.vocab;
  auto last_logp = [&](std::vector<int> ids) {
    KVCache c(m->cfg, int(ids.size()));
    Forward f(*m);
    std::vector<float> z(size_t(ids.size()) * V);
    f.tokens(ids.data(), int(ids.size()), c, z.data());
    std::vector<double> lp(static_cast<size_t>(V), 0.0);
    const float* r = z.data() + (ids.size() - 1) * V;
    double mx = r[0], se = 0;
    for (int j = 1; j < V; j++) mx = std::max(mx, double(r[j]));
    for (int j = 0; j < V; j++) se += std::exp(double(r[j]) - mx);
    for (int j = 0; j < V; j++) lp[size_t(j)] = double(r[j]) - mx - std::log(se);
    return lp;
  };
  std::vector<int> p = tok.encode(pos, true), n = tok.encode(neg, true);
  int differs_from_greedy = 0;
  for (int id : out) {
    const auto a = last_logp(p), b = last_logp(n);
    const double top = *std::max_element(a.begin(), a.end());
    int want = -1;
    double best = -1e300;
    for (int j = 0; j < V; j++)
      if (a[size_t(j)] >= top + std::log(plaus) && a[size_t(j)] + gamma * (a[size_t(j)] - b[size_t(j)]) > best)
        best = a[size_t(j)] + gamma * (a[size_t(j)] - b[size_t(j)]), want = j;
    EXPECT_EQ(id, want);
    differs_from_greedy += a[size_t(id)] < top;
    p.push_back(id), n.push_back(id);
  }
  EXPECT_GT(differs_from_greedy, 0) << "the contrast never changed a token: the test would not see a wrong sign";
  const auto g = generate(*m, tok.encode(pos, true), 14, {}).ids;
  EXPECT_EQ(contrastive_decode(*m, pos, neg, 14, gamma, 1.0), g);
  EXPECT_EQ(contrastive_decode(*m, pos, neg, 14, 0.0, 0.1), g);  // γ = 0: the teacher's own greedy choice
}

TEST(Scott, CounterfactualExamplesScoreOnlyThePerturbedAnswer) {
  auto m = load_model(builtin_model());
  const auto ps = word_problems(6, 17);
  std::vector<std::pair<long, long>> asked;
  RationaleFn r = [&](const WordProblem& p, long a, long c) {
    asked.push_back({a, c});
    return fmt::format(" {} gives {} not {}.", p.program, a, c);
  };
  KdSet s = scott_set(ps, r, 0.5, 3);
  ASSERT_EQ(s.examples.size(), 2 * ps.size());
  for (size_t i = 0; i < ps.size(); i++) {
    const KdExample &f = s.examples[2 * i], &cf = s.examples[2 * i + 1];
    const long gold = ps[i].answer, wrong = asked[2 * i].second;
    EXPECT_EQ(asked[2 * i], std::make_pair(gold, wrong));   // factual: a* contrasted with a'
    EXPECT_EQ(asked[2 * i + 1], std::make_pair(wrong, gold));  // counterfactual: a' contrasted with a*
    EXPECT_NE(wrong, gold);
    EXPECT_EQ(f.targets[0].text, fmt::format(" {} gives {} not {}.", ps[i].program, gold, wrong));
    EXPECT_EQ(f.targets[1].text, answer_segment(gold));
    EXPECT_FLOAT_EQ(f.targets[0].weight, 1.f);
    EXPECT_EQ(cf.prompt, task_prompt(ps[i]));
    EXPECT_EQ(cf.targets[1].text, answer_segment(wrong));
    EXPECT_FLOAT_EQ(cf.targets[0].weight, 0.f);
    EXPECT_FLOAT_EQ(cf.targets[1].weight, 0.5f);
    // in the token stream, the counterfactual rationale is context: only the answer (and EOS) is scored
    KdSet one;
    one.examples = {cf};
    const auto st = kd_stream(m->tokenizer(), one);
    // the answer's tokens: what the example's text gains with it (kd_stream encodes prompt + segments as one text)
    const auto& tok = m->tokenizer();
    const size_t n_ans = tok.encode(cf.prompt + cf.targets[0].text + cf.targets[1].text, true).size() -
                         tok.encode(cf.prompt + cf.targets[0].text, true).size();
    size_t scored = 0;
    for (float w : st.weight) scored += w > 0;
    EXPECT_EQ(scored, n_ans + 1);
  }
  EXPECT_EQ(scott_set(ps, r, 0.0, 3).examples.size(), ps.size());  // cf_weight 0: factual examples only
}

// End to end on the built-in model (which cannot solve the task): the recipes that keep every problem write their
// sets; the filtering ones stop with a one-line error; SSLM reports its stages; scott runs as a recipe stage.
TEST(CotCli, RecipesRunFromTheCliAndAsAStage) {
  const std::string dir = test::temp_dir("kd_cot1"), m = builtin_model();
  const std::string common = fmt::format("train distill --teacher {} --student {} --drop-layers 3,4 --task arith "
                                         "--task-n 4 --max-new-tokens 16 --steps 2 --batch 2 --seqlen 16 --quiet",
                                         m, m);
  std::string out, err;
  int rc = test::run_lmpress(common + fmt::format(" --kd-recipe step_by_step --kd-set lambda=0.5 --kd-out {}/s.jsonl "
                                                  "--json -o {}/s", dir, dir), &out, &err);
  ASSERT_EQ(rc, 0) << err;
  KdSet s = load_kd_set(dir + "/s.jsonl");
  EXPECT_EQ(s.recipe, "step_by_step");
  EXPECT_EQ(s.examples.size(), 8u);
  rc = test::run_lmpress(common + fmt::format(" --kd-recipe sslm --kd-set stages=2,dev_n=3 --task-eval 2 --json "
                                              "-o {}/f", dir), &out, &err);
  // the untrained teacher gets no problem right: nothing to specialise on
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("sslm"), std::string::npos) << err;
  rc = test::run_lmpress(common + fmt::format(" --kd-recipe cot_magister -o {}/g", dir), nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("kept no examples"), std::string::npos) << err;
  rc = test::run_lmpress(fmt::format("train distill --teacher {} --student {} --prompts {}/s.jsonl --kd-recipe mt_cot "
                                     "--steps 1 -o {}/h", m, m, dir, dir), nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--task arith"), std::string::npos) << err;
  // scott as a recipe stage of `lmpress compress`
  const std::string recipe = dir + "/r.json";
  const nlohmann::json r = {{"stages", {{{"modifier", "train"}, {"mode", "distill"}, {"teacher", m}, {"kd-recipe", "scott"},
                                         {"kd-set", "cf_weight=0.5,plaus=0.2"}, {"task", "arith"}, {"task-n", 3},
                                         {"max-new-tokens", 12}, {"kd-out", dir + "/sc.jsonl"}, {"steps", 2},
                                         {"batch", 2}, {"seqlen", 16}, {"quiet", true}}}}};
  const std::string rs = r.dump();
  write_file_atomic(recipe, rs.data(), rs.size());
  rc = test::run_lmpress(fmt::format("compress --model {} --recipe {} -o {}/c", m, recipe, dir), nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_EQ(load_model(dir + "/c")->recipe["stages"][0]["modifier"], "train");
  KdSet sc = load_kd_set(dir + "/sc.jsonl");
  EXPECT_EQ(sc.recipe, "scott");
  EXPECT_GE(sc.examples.size(), 3u);
}

// Black-box distillation machinery (src/distill/): the kd-data file round-trips and rejects bad lines by
// file:line, the weighted token stream, the weighted cross-entropy (step-by-step's L = Σ w_seg CE_seg) against
// a direct sum, teacher scoring against an independent forward pass, the checkable task (answers, programs),
// recipe settings, and the CLI + recipe-stage paths end to end on the built-in stories260K.
#include <cmath>
#include <filesystem>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "distill/kd_data.h"
#include "distill/kd_recipe.h"
#include "distill/kd_tasks.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "testutil.h"
#include "train/losses.h"

namespace fs = std::filesystem;
using namespace lmp;
using namespace lmp::distill;

namespace {
std::string builtin_model() { return std::string(LMP_SOURCE_DIR) + "/models/stories260K"; }

KdSet two_examples() {
  KdSet s;
  s.recipe = "unit";
  s.stats["written"] = 2;
  s.examples.push_back({"Q: one\nA:", {{" because", 0.5f, "rationale"}, {" yes", 1.0f, "answer"}}, {{"k", 1}}});
  s.examples.push_back({"Once upon a time", {{" there was a cat.", 1.0f, "response"}}, nlohmann::json::object()});
  return s;
}
}  // namespace

TEST(KdData, JsonlRoundTripAndErrors) {
  const std::string dir = test::temp_dir("kd_rt"), path = dir + "/d.jsonl";
  KdSet s = two_examples();
  save_kd_set(s, path);
  KdSet r = load_kd_set(path);
  EXPECT_EQ(r.recipe, "unit");
  EXPECT_EQ(r.stats["written"], 2);
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.examples[0].prompt, "Q: one\nA:");
  ASSERT_EQ(r.examples[0].targets.size(), 2u);
  EXPECT_EQ(r.examples[0].targets[0].role, "rationale");
  EXPECT_FLOAT_EQ(r.examples[0].targets[0].weight, 0.5f);
  EXPECT_EQ(r.examples[0].meta["k"], 1);
  EXPECT_EQ(r.examples[1].targets[0].text, " there was a cat.");
  // a broken line is named by file:line
  std::string text = read_file(path) + "{\"prompt\": 3}\n";
  write_file_atomic(path, text.data(), text.size());
  try {
    load_kd_set(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path + ":4"), std::string::npos) << e.what();
  }
  const std::string neg = "{\"recipe\":\"x\"}\n{\"prompt\":\"a\",\"targets\":[{\"text\":\"b\",\"weight\":-1}]}\n";
  write_file_atomic(path, neg.data(), neg.size());
  EXPECT_THROW(load_kd_set(path), Error);
}

TEST(KdData, StreamCarriesSegmentWeights) {
  auto m = load_model(builtin_model());
  const Tokenizer& tok = m->tokenizer();
  KdSet s = two_examples();
  train::TokenStream st = kd_stream(tok, s);
  ASSERT_EQ(st.ids.size(), st.weight.size());
  // rebuild the expected stream independently: each example is the encoding of its whole text; its prompt
  // prefix weighs 0 and each target's tokens (those the text gains with it) weigh its weight
  std::vector<int> ids;
  std::vector<float> w;
  for (const auto& e : s.examples) {
    std::string text = e.prompt;
    size_t done = tok.encode(text, true).size();
    std::vector<float> ew(done, 0.0f);
    for (const auto& g : e.targets) {
      text += g.text;
      const size_t n = tok.encode(text, true).size();
      ew.resize(n, g.weight);
      done = n;
    }
    std::vector<int> all = tok.encode(text, true);
    ASSERT_EQ(all.size(), ew.size());
    ids.insert(ids.end(), all.begin(), all.end());
    w.insert(w.end(), ew.begin(), ew.end());
    ids.push_back(tok.eos_id()), w.push_back(e.targets.back().weight);
  }
  EXPECT_EQ(st.ids, ids);
  EXPECT_EQ(st.weight, w);
  EXPECT_EQ(st.ids[0], tok.bos_id());
  // the first target token is the word as generated after the prompt (no extra word-start piece)
  const std::vector<int> joint = tok.encode("Once upon a time there was a cat.", true);
  const size_t np = tok.encode("Once upon a time", true).size();
  EXPECT_EQ(std::vector<int>(joint.begin() + long(np), joint.end()),
            std::vector<int>(st.ids.end() - long(joint.size() - np) - 1, st.ids.end() - 1));
}

// Distilling step-by-step's loss is the weighted sum of its targets: Σ_n w_n (−log p[y_n]) / #scored.
TEST(KdData, WeightedCrossEntropyIsWeightedSumOfSegments) {
  const int N = 6, V = 7;
  auto logits = test::random_vector(size_t(N) * V, 3, 2.0f);
  std::vector<int> tgt = {1, 4, -1, 6, 0, 2};
  std::vector<float> w = {0.5f, 0.5f, 0.0f, 1.0f, 1.0f, 2.0f};
  std::vector<float> d(size_t(N) * V), d1(size_t(N) * V);
  const double loss = train::cross_entropy(d.data(), logits.data(), tgt.data(), N, V, w.data());
  const double plain = train::cross_entropy(d1.data(), logits.data(), tgt.data(), N, V);
  double want = 0, want_plain = 0;
  for (int n = 0; n < N; n++) {
    if (tgt[n] < 0) continue;
    double mx = -1e30, se = 0;
    for (int j = 0; j < V; j++) mx = std::max(mx, double(logits[size_t(n) * V + j]));
    for (int j = 0; j < V; j++) se += std::exp(double(logits[size_t(n) * V + j]) - mx);
    const double nll = -(double(logits[size_t(n) * V + tgt[n]]) - mx - std::log(se));
    want += w[n] * nll;
    want_plain += nll;
  }
  EXPECT_NEAR(loss, want / 5, 1e-9);
  EXPECT_NEAR(plain, want_plain / 5, 1e-9);
  for (int n = 0; n < N; n++)
    for (int j = 0; j < V; j++) EXPECT_NEAR(d[size_t(n) * V + j], w[n] * d1[size_t(n) * V + j], 1e-7);
}

TEST(KdData, ScoreEqualsIndependentForward) {
  auto m = load_model(builtin_model());
  const Tokenizer& tok = m->tokenizer();
  const std::string prompt = "Once upon a time", cont = " there was a little dog";
  Score s = score(*m, prompt, cont);
  const std::vector<int> p = tok.encode(prompt, true), all = tok.encode(prompt + cont, true);
  ASSERT_TRUE(std::equal(p.begin(), p.end(), all.begin()));  // the prompt's ids are a prefix here
  const std::vector<int> c(all.begin() + long(p.size()), all.end());
  ASSERT_EQ(s.ntokens, int(c.size()));
  // token by token through the KV cache, each next-token distribution from a one-token step
  KVCache cache(m->cfg, int(p.size() + c.size()));
  Forward f(*m);
  const int V = m->cfg.vocab;
  std::vector<float> z(V);
  f.tokens(p.data(), int(p.size()), cache, z.data(), true);
  double want = 0;
  for (int id : c) {
    double mx = -1e30, se = 0;
    for (float v : z) mx = std::max(mx, double(v));
    for (float v : z) se += std::exp(double(v) - mx);
    want += double(z[size_t(id)]) - mx - std::log(se);
    f.tokens(&id, 1, cache, z.data(), true);
  }
  EXPECT_NEAR(s.sum_logp, want, 1e-3 * std::abs(want));
}

TEST(KdTasks, AnswersProgramsAndDeterminism) {
  EXPECT_EQ(eval_program("3 + 2"), 5);
  EXPECT_EQ(eval_program(" 3 + 2*(4 - 1) "), 9);
  EXPECT_EQ(eval_program("10-4-3"), 3);  // left to right
  EXPECT_FALSE(eval_program("3 +").has_value());
  EXPECT_FALSE(eval_program("3 + x").has_value());
  EXPECT_FALSE(eval_program("(1 + 2").has_value());
  EXPECT_FALSE(eval_program("").has_value());
  EXPECT_FALSE(eval_program("99999999999 * 99999999999").has_value());
  EXPECT_EQ(extract_answer("so 3 + 4 = 7. The answer is 7."), 7);
  EXPECT_EQ(extract_answer("the answer is 2, no, the answer is 12"), 12);
  EXPECT_FALSE(extract_answer("I do not know").has_value());
  auto a = word_problems(50, 7), b = word_problems(50, 7), c = word_problems(50, 8);
  ASSERT_EQ(a.size(), 50u);
  bool differs = false;
  for (size_t i = 0; i < a.size(); i++) {
    EXPECT_EQ(a[i].question, b[i].question);
    differs |= a[i].question != c[i].question;
    // every reference is self-consistent: its program evaluates to the answer, its solution states it
    EXPECT_EQ(eval_program(a[i].program), a[i].answer) << a[i].program;
    EXPECT_EQ(extract_answer(reference_solution(a[i])), a[i].answer);
    EXPECT_GE(a[i].answer, 0);
  }
  EXPECT_TRUE(differs);
}

TEST(KdRecipe, OptionsAreCheckedAndUnknownRecipeListed) {
  KdOptions o = KdOptions::parse("rounds=3,keep=0.25,mode=hard");
  EXPECT_EQ(o.integer("rounds", 1), 3);
  EXPECT_DOUBLE_EQ(o.real("keep", 1), 0.25);
  EXPECT_THROW(o.finish("x"), Error);  // 'mode' unread
  EXPECT_EQ(o.str("mode", ""), "hard");
  EXPECT_NO_THROW(o.finish("x"));
  EXPECT_THROW(KdOptions::parse("rounds"), Error);
  KdOptions bad = KdOptions::parse("rounds=two");
  EXPECT_THROW(bad.integer("rounds", 1), Error);
  auto m = load_model(builtin_model());
  KdContext ctx;
  ctx.teacher = m.get();
  ctx.prompts = {"Once upon a time"};
  try {
    run_kd_recipe("no-such-recipe", ctx);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("responses"), std::string::npos) << e.what();
  }
}

// End to end through the CLI: the teacher writes responses, the data file is saved, the student is trained on it;
// the same run as a recipe stage of `lmpress compress`.
TEST(KdCli, ResponsesRecipeAndTrainStage) {
  const std::string dir = test::temp_dir("kd_cli"), m = builtin_model();
  const std::string prompts = dir + "/prompts.txt";
  const std::string p = "Once upon a time\nLily went to the park\nThe cat was\n";
  write_file_atomic(prompts, p.data(), p.size());
  std::string out, err;
  int rc = test::run_lmpress(fmt::format("train distill --teacher {} --student {} --drop-layers 4 --kd-recipe responses "
                                         "--prompts {} --max-new-tokens 24 --kd-out {}/d.jsonl --steps 3 --batch 2 "
                                         "--seqlen 16 --task arith --task-n 4 --task-eval 3 --json -o {}/s",
                                         m, m, prompts, dir, dir), &out, &err);
  ASSERT_EQ(rc, 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["kd"]["recipe"], "responses");
  EXPECT_EQ(j["kd"]["examples"], 7);  // 4 task problems + 3 prompts
  EXPECT_TRUE(j.contains("task_accuracy_after"));
  KdSet s = load_kd_set(dir + "/d.jsonl");
  EXPECT_EQ(s.examples.size(), 7u);
  EXPECT_EQ(load_model(dir + "/s")->cfg.n_layers, 4);
  // unknown recipe setting → exit 2 naming it
  rc = test::run_lmpress(fmt::format("train distill --teacher {} --student {} --prompts {} --kd-set bogus=1 --steps 1 "
                                     "--batch 1 --seqlen 8 -o {}/s2", m, m, prompts, dir), nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("bogus"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir + "/s2"));
  // a recipe whose stages are GPTQ-free RTN then a QAT train stage: the output is the QAT model
  const std::string recipe = dir + "/r.json";
  const nlohmann::json r = {{"stages", {{{"modifier", "rtn"}, {"bits", 8}, {"group", 32}},
                                        {{"modifier", "train"}, {"mode", "qat"}, {"bits", 4}, {"group", 32},
                                         {"data", prompts}, {"format", "text"}, {"steps", 2}, {"batch", 1},
                                         {"seqlen", 8}, {"quiet", true}}}}};
  const std::string rs = r.dump();
  write_file_atomic(recipe, rs.data(), rs.size());
  rc = test::run_lmpress(fmt::format("compress --model {} --recipe {} -o {}/c", m, recipe, dir), nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  auto c = load_model(dir + "/c");
  EXPECT_EQ(c->blocks[0].lin[0].w->format(), "int4_g32_asym");
  EXPECT_EQ(c->recipe["stages"][1]["modifier"], "train");
}

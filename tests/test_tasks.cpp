// Zero-shot task scoring: the shared-prefix KV-cache scorer against an independent full-sequence forward,
// acc / acc_norm / last-word accuracy against hand-computed values, and the loaders on the real shared files.
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"
#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

namespace {

// Independent reference: run ctx ++ cont from an empty cache, all logits; Σ log softmax; greedy check.
RequestScore reference_score(const Model& m, const TokenizedRequest& r) {
  std::vector<int> s = r.ctx;
  s.insert(s.end(), r.cont.begin(), r.cont.end());
  const int V = m.cfg.vocab, n = int(s.size());
  Forward fw(m);
  KVCache cache(m.cfg, n);
  std::vector<float> logits(size_t(n) * V);
  fw.tokens(s.data(), n, cache, logits.data());
  RequestScore out;
  out.greedy = true;
  for (size_t j = r.ctx.size(); j < s.size(); j++) {
    const float* row = logits.data() + (j - 1) * size_t(V);
    double mx = row[0];
    int arg = 0;
    for (int v = 1; v < V; v++)
      if (row[v] > mx) mx = row[v], arg = v;
    double z = 0;
    for (int v = 0; v < V; v++) z += std::exp(double(row[v]) - mx);
    out.ll += double(row[s[j]]) - mx - std::log(z);
    if (arg != s[j]) out.greedy = false;
  }
  return out;
}

std::unique_ptr<Model> tiny_model(int vocab) {
  std::string dir = test::temp_dir("tasks_model");
  test::TinySpec spec;
  spec.vocab = vocab;
  spec.max_pos = 64;
  test::write_tiny_model(dir, spec);
  return load_model(dir);
}

}  // namespace

TEST(Tasks, SharedPrefixScoringEqualsFullSequenceForward) {
  auto m = tiny_model(64);
  Forward fw(*m);
  // Shared context, choices of 1..4 tokens (the harness's usual multiple choice).
  std::vector<TokenizedRequest> mc = {{{1, 5, 9, 13, 2}, {7}}, {{1, 5, 9, 13, 2}, {8, 3, 40}},
                                      {{1, 5, 9, 13, 2}, {63, 0, 11, 12}}};
  // Winogrande-like: contexts differ after a shared prefix, same continuation.
  std::vector<TokenizedRequest> wino = {{{1, 4, 4, 20}, {30, 31, 32}}, {{1, 4, 4, 21, 22}, {30, 31, 32}}};
  // No shared prefix at all.
  std::vector<TokenizedRequest> none = {{{3, 4}, {5, 6}}, {{7}, {8, 9, 10}}};
  for (const auto* item : {&mc, &wino, &none}) {
    auto got = score_requests(fw, *item);
    ASSERT_EQ(got.size(), item->size());
    for (size_t i = 0; i < item->size(); i++) {
      RequestScore want = reference_score(*m, (*item)[i]);
      EXPECT_NEAR(got[i].ll, want.ll, 1e-4 * std::max(1.0, std::abs(want.ll))) << "request " << i;
      EXPECT_EQ(got[i].greedy, want.greedy) << "request " << i;
    }
  }
}

TEST(Tasks, GreedyContinuationIsDetected) {
  auto m = tiny_model(64);
  // Build the model's own greedy continuation of a context: it must score greedy = true.
  std::vector<int> ctx = {1, 17, 23};
  std::vector<int> cont;
  {
    Forward fw(*m);
    KVCache cache(m->cfg, 16);
    std::vector<float> logits(size_t(m->cfg.vocab));
    fw.tokens(ctx.data(), int(ctx.size()), cache, logits.data(), true);
    for (int k = 0; k < 4; k++) {
      int arg = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
      cont.push_back(arg);
      fw.tokens(&arg, 1, cache, logits.data(), true);
    }
  }
  Forward fw(*m);
  auto s = score_requests(fw, {{ctx, cont}});
  EXPECT_TRUE(s[0].greedy);
  std::vector<int> wrong = cont;
  wrong[2] = (wrong[2] + 1) % m->cfg.vocab;
  s = score_requests(fw, {{ctx, wrong}});
  EXPECT_FALSE(s[0].greedy);
}

TEST(Tasks, TooLongSequencesLoseContextFromTheLeft) {
  auto m = tiny_model(64);  // max_pos 64
  TokenizedRequest r;
  for (int i = 0; i < 80; i++) r.ctx.push_back(i % 60 + 1);
  r.cont = {5, 6, 7};
  Forward fw(*m);
  auto got = score_requests(fw, {r});
  TokenizedRequest cut;  // what the model can see: the last max_pos + 1 tokens of ctx ++ cont
  cut.ctx.assign(r.ctx.end() - (65 - 3), r.ctx.end());
  cut.cont = r.cont;
  EXPECT_NEAR(got[0].ll, reference_score(*m, cut).ll, 1e-4);
}

// End to end through the tokenizer: acc and acc_norm of a small hand-made task equal the argmax of the
// independently computed sums, exactly.
TEST(Tasks, AccAndAccNormEqualHandComputedArgmax) {
  std::string tok_dir = LMP_REQUIRE_SHARED("models/stories260K");
  auto m = tiny_model(512);
  m->set_tokenizer(Tokenizer::from_dir(tok_dir));
  const Tokenizer& tok = m->tokenizer();
  Task t;
  t.name = "hand";
  t.has_acc_norm = true;
  const char* ctxs[] = {"Once upon a time, there was a", "The cat sat on the", "Lily liked to play with her",
                        "Question: what color is the sky?\nAnswer:", "Tom was happy because"};
  std::vector<std::vector<std::string>> choices = {{"little girl", "dog", "big red ball that rolled"},
                                                   {"mat", "sun", "tree and looked at the bird"},
                                                   {"toys", "mom in the park", "friend"},
                                                   {"blue", "green", "very dark at night"},
                                                   {"he won", "it was sunny outside today", "yes"}};
  long want_acc = 0, want_norm = 0;
  for (int i = 0; i < 5; i++) {
    TaskItem it;
    it.contexts = {ctxs[i]};
    for (auto& c : choices[size_t(i)]) it.continuations.push_back(" " + c), it.norm_bytes.push_back(c.size());
    it.gold = i % 3;
    // Independent: encode(context) and encode(context + continuation), full forward each.
    std::vector<double> ll, norm;
    for (size_t k = 0; k < it.continuations.size(); k++) {
      std::vector<int> c = tok.encode(ctxs[i], true), whole = tok.encode(ctxs[i] + it.continuations[k], true);
      ASSERT_TRUE(std::equal(c.begin(), c.end(), whole.begin())) << "splits cleanly";
      TokenizedRequest r{c, std::vector<int>(whole.begin() + long(c.size()), whole.end())};
      ll.push_back(reference_score(*m, r).ll);
      norm.push_back(ll.back() / double(it.norm_bytes[k]));
    }
    int best = int(std::max_element(ll.begin(), ll.end()) - ll.begin());
    int best_norm = int(std::max_element(norm.begin(), norm.end()) - norm.begin());
    want_acc += best == it.gold;
    want_norm += best_norm == it.gold;
    t.items.push_back(it);
  }
  TaskOptions o;
  o.progress = false;
  TaskResult r = evaluate_task(*m, t, o);
  EXPECT_EQ(r.n, 5);
  EXPECT_DOUBLE_EQ(r.acc, double(want_acc) / 5);
  EXPECT_DOUBLE_EQ(r.acc_norm, double(want_norm) / 5);
  EXPECT_NEAR(r.acc_stderr, std::sqrt(r.acc * (1 - r.acc) / 4), 1e-12);
}

TEST(Tasks, EncodeRequestMovesTrailingSpaceToContinuation) {
  std::string tok_dir = LMP_REQUIRE_SHARED("models/stories260K");
  auto tok = Tokenizer::from_dir(tok_dir);
  TokenizedRequest a = encode_request(*tok, "The dog ran ", "home", true);
  TokenizedRequest b = encode_request(*tok, "The dog ran", " home", true);
  EXPECT_EQ(a.ctx, b.ctx);
  EXPECT_EQ(a.cont, b.cont);
  std::vector<int> whole = tok->encode("The dog ran home", true);
  std::vector<int> joined = b.ctx;
  joined.insert(joined.end(), b.cont.begin(), b.cont.end());
  EXPECT_EQ(joined, whole);
  EXPECT_EQ(b.ctx.front(), tok->bos_id());
}

TEST(Tasks, LastWordAccuracyAndPplOnSharedModel) {
  std::string dir = LMP_REQUIRE_SHARED("models/stories260K");
  auto m = load_model(dir);
  // A story the model knows well: its own greedy text makes the last word greedy by construction.
  Task t;
  t.name = "lw";
  t.kind = TaskKind::LastWord;
  const char* texts[] = {"Once upon a time, there was a little girl named Lily. She loved to play outside",
                         "Tom and Sue went to the park. They played on the swings and had a lot of fun"};
  double ll_sum = 0;
  long greedy = 0;
  for (const char* s : texts) {
    std::string text = s;
    size_t sp = text.rfind(' ');
    TaskItem it;
    it.contexts = {text.substr(0, sp)};
    it.continuations = {text.substr(sp)};
    it.norm_bytes = {0};
    t.items.push_back(it);
    RequestScore want = reference_score(*m, encode_request(m->tokenizer(), it.contexts[0], it.continuations[0], true));
    ll_sum += want.ll;
    greedy += want.greedy;
  }
  TaskOptions o;
  o.progress = false;
  TaskResult r = evaluate_task(*m, t, o);
  EXPECT_DOUBLE_EQ(r.acc, double(greedy) / 2);
  EXPECT_NEAR(r.ppl, std::exp(-ll_sum / 2), 1e-4 * r.ppl);
  EXPECT_FALSE(r.has_acc_norm);
}

TEST(Tasks, LoadersReadTheSharedFilesWithTheRightCounts) {
  std::string data = LMP_REQUIRE_SHARED("data/tasks");
  struct Want {
    const char* name;
    long lines, items;
    size_t choices;
  };
  for (Want w : {Want{"lambada_openai", 5153, 5153, 1}, Want{"piqa", 1838, 1838, 2}, Want{"winogrande", 1267, 1267, 2},
                 Want{"boolq", 3270, 3270, 2}, Want{"arc_easy", 2376, 2368, 4}, Want{"arc_challenge", 1172, 1168, 4},
                 Want{"hellaswag", 10042, 10042, 4}}) {
    Task t = load_task(w.name, data);
    EXPECT_EQ(t.lines, w.lines) << w.name;
    EXPECT_EQ(long(t.items.size()), w.items) << w.name;
    EXPECT_EQ(t.skipped, w.lines - w.items) << w.name;
    for (const auto& it : t.items) {
      ASSERT_EQ(it.continuations.size(), w.choices) << w.name;
      ASSERT_TRUE(it.gold >= 0 && it.gold < int(w.choices)) << w.name;
      ASSERT_EQ(it.continuations[0][0], ' ') << w.name << ": continuation starts with the delimiter";
    }
  }
  // Spot checks against the first items quoted in SOURCE.md.
  Task wino = load_task("winogrande", data);
  EXPECT_EQ(wino.items[0].contexts[0], "Sarah was a much better surgeon than Maria so Sarah");
  EXPECT_EQ(wino.items[0].contexts[1], "Sarah was a much better surgeon than Maria so Maria");
  EXPECT_EQ(wino.items[0].continuations[0], " always got the easier cases.");
  EXPECT_EQ(wino.items[0].gold, 1);
  Task hs = load_task("hellaswag", data);
  EXPECT_EQ(hs.items[0].contexts[0], "Roof shingle removal: A man is sitting on a roof. he");
  EXPECT_EQ(hs.items[0].gold, 3);
  EXPECT_EQ(hs.items[0].continuations[3], " starts pulling up roofing on a roof.");
  Task arc = load_task("arc_challenge", data);
  EXPECT_EQ(arc.items[0].gold, 2);  // Mercury_7175875, answer C
  EXPECT_EQ(arc.items[0].continuations[2], " Planetary days will become shorter.");
  Task bq = load_task("boolq", data);
  EXPECT_EQ(bq.items[0].gold, 0);
  EXPECT_EQ(bq.items[0].continuations[1], " yes");
  long yes = 0;
  for (const auto& it : bq.items) yes += it.gold;
  EXPECT_EQ(yes, 2033);
  Task lam = load_task("lambada_openai", data);
  EXPECT_EQ(lam.items[0].continuations[0].find(' ', 1), std::string::npos) << "one word";
}

TEST(Tasks, BadInputsNameTheFile) {
  std::string dir = test::temp_dir("tasks_bad");
  EXPECT_THROW(load_task("nonesuch", dir), Error);
  try {
    load_task("piqa", dir);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("valid.jsonl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_bz2_file(dir + "/none.bz2"), Error);
}

// Budgeted mixed-precision search: the knapsack is the exact optimum (brute force), the search meets the byte
// budget exactly on a tiny random model, and on stories260K the mixed config beats uniform RTN int3_g32 of the
// same bytes on tinystories ppl (first 100 windows of 512 tokens, to keep the test short).
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "compress/recipe.h"
#include "core/error.h"
#include "kernels/qint.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "model/forward.h"
#include "search/budget_search.h"
#include "testutil.h"

namespace lmp {
namespace {

// Brute force over every combination: the least Σ loss with Σ cost ≤ budget (inf when none fits).
double brute_force(const std::vector<std::vector<int64_t>>& cost, const std::vector<std::vector<double>>& loss,
                   int64_t budget) {
  double best = INFINITY;
  std::vector<size_t> idx(cost.size(), 0);
  while (true) {
    int64_t c = 0;
    double l = 0;
    for (size_t i = 0; i < idx.size(); i++) c += cost[i][idx[i]], l += loss[i][idx[i]];
    if (c <= budget) best = std::min(best, l);
    size_t i = 0;
    while (i < idx.size() && ++idx[i] == cost[i].size()) idx[i++] = 0;
    if (i == idx.size()) break;
  }
  return best;
}

TEST(Search, KnapsackIsExactOptimum) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 40; trial++) {
    const int n = 3 + trial % 4, k = 2 + trial % 4;
    auto cost = std::vector<std::vector<int64_t>>(size_t(n));
    auto loss = std::vector<std::vector<double>>(size_t(n));
    int64_t lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
      for (int o = 0; o < k; o++) {
        cost[size_t(i)].push_back(10 + int64_t(rng() % 200));
        loss[size_t(i)].push_back(double(rng() % 100000) / 1000.0);
      }
      lo += *std::min_element(cost[size_t(i)].begin(), cost[size_t(i)].end());
      hi += *std::max_element(cost[size_t(i)].begin(), cost[size_t(i)].end());
    }
    for (int b = 0; b < 5; b++) {
      const int64_t budget = lo + (hi - lo) * b / 4;
      const double want = brute_force(cost, loss, budget);
      KnapsackResult r = choose_under_budget(cost, loss, budget);
      ASSERT_EQ(r.unit, 1);
      int64_t c = 0;
      double l = 0;
      for (int i = 0; i < n; i++) c += cost[size_t(i)][size_t(r.choice[size_t(i)])], l += loss[size_t(i)][size_t(r.choice[size_t(i)])];
      EXPECT_EQ(c, r.bytes);
      EXPECT_LE(c, budget);
      EXPECT_NEAR(l, r.loss, 1e-9);
      EXPECT_NEAR(l, want, 1e-9) << "trial " << trial << " budget " << budget;
      // Coarse units (costs rounded up) never break the budget and never beat the optimum.
      KnapsackResult coarse = choose_under_budget(cost, loss, budget, 16);
      EXPECT_LE(coarse.bytes, budget);
      EXPECT_GE(coarse.loss, want - 1e-9);
    }
  }
  EXPECT_THROW(choose_under_budget({{10, 20}}, {{1, 0}}, 9), Error);
}

TEST(Search, TinyModelMeetsBudgetExactly) {
  const std::string dir = test::temp_dir("search-tiny"), model = dir + "/m", out = dir + "/out";
  test::TinySpec spec;
  spec.hidden = 64;
  spec.ffn = 96;
  test::write_tiny_model(model, spec);
  auto m = load_model(model);
  Samples windows(2, std::vector<int>(24));
  std::mt19937 rng(3);
  for (auto& w : windows)
    for (int& t : w) t = int(rng() % uint32_t(spec.vocab));
  // The model is put back exactly after the sensitivity sweep.
  std::vector<float> before(size_t(24 * spec.vocab)), after(before.size());
  {
    Forward fw(*m);
    KVCache c(m->cfg, 24);
    fw.tokens(windows[0].data(), 24, c, before.data());
  }
  auto cands = candidate_grid({2, 3, 4, 8}, {32, 0});
  auto layers = measure_sensitivity(*m, windows, cands, false);
  {
    Forward fw(*m);
    KVCache c(m->cfg, 24);
    fw.tokens(windows[0].data(), 24, c, after.data());
  }
  EXPECT_EQ(before, after);
  ASSERT_EQ(layers.size(), size_t(spec.layers * kLinearsPerBlock));
  for (const auto& l : layers) {
    EXPECT_GT(l.kl[0], l.kl[6]) << l.name;  // int2_g32 hurts more than int8_g32
    EXPECT_GE(l.kl[6], 0.0);
  }
  const double bpw = 3.6;
  const int64_t budget = budget_bytes(*m, bpw);
  std::vector<std::vector<int64_t>> cost;
  std::vector<std::vector<double>> loss;
  for (const auto& l : layers) cost.push_back(l.bytes), loss.push_back(l.kl);
  KnapsackResult k = choose_under_budget(cost, loss, budget);
  EXPECT_LE(k.bytes, budget);
  EXPECT_GT(k.bytes, budget - 2000);  // the budget is used, not left idle
  Recipe r = parse_recipe({{"stages", search_recipe_stages(layers, cands, k.choice, "rtn")}}, "test");
  auto q = load_model(model);
  run_recipe(*q, r, false);
  save_model(*q, out);
  auto s = load_model(out);
  int64_t bytes = 0;
  for (size_t i = 0; i < s->blocks.size(); i++)
    for (int j = 0; j < kLinearsPerBlock; j++) {
      const auto& w = *s->blocks[i].lin[size_t(j)].w;
      const size_t li = i * kLinearsPerBlock + size_t(j);
      EXPECT_EQ(int64_t(w.nbytes()), layers[li].bytes[size_t(k.choice[li])]) << layers[li].name;
      QuantGrid g;
      g.bits = cands[size_t(k.choice[li])].bits;
      g.group = cands[size_t(k.choice[li])].group;
      EXPECT_EQ(w.format(), QIntMatrix::format_name(g)) << layers[li].name;
      bytes += int64_t(w.nbytes());
    }
  EXPECT_EQ(bytes, k.bytes);
  EXPECT_LE(s->linear_bits_per_weight(), bpw);
  EXPECT_EQ(s->recipe["stages"], r.json["stages"]);
}

TEST(Search, Stories260KMixedBeatsUniformAtEqualBytes) {
  const std::string model = LMP_REQUIRE_SHARED("models/stories260K");
  const std::string calib = LMP_REQUIRE_SHARED("data/tinystories/calib.txt");
  const std::string eval = LMP_REQUIRE_SHARED("data/tinystories/eval.txt");
  // Uniform RTN int3_g32: its exact bits/weight is the budget.
  auto u = load_model(model);
  run_recipe(*u, parse_recipe({{"stages", {{{"modifier", "rtn"}, {"bits", 3}, {"group", 32}}}}}, "test"), false);
  const double bpw_u = u->linear_bits_per_weight();
  int64_t bytes_u = 0;
  for (const auto& b : u->blocks)
    for (const auto& l : b.lin) bytes_u += int64_t(l.w->nbytes());

  auto m = load_model(model);
  CalibOptions co;
  co.path = calib;
  co.format = TextFormat::Docs;
  co.nsamples = 4;
  co.seqlen = 256;
  Samples windows = load_calibration(m->tokenizer(), co);
  auto cands = candidate_grid({2, 3, 4, 8}, {32, 128});
  auto layers = measure_sensitivity(*m, windows, cands, false);
  const int64_t budget = budget_bytes(*m, bpw_u);
  EXPECT_EQ(budget, bytes_u);
  std::vector<std::vector<int64_t>> cost;
  std::vector<std::vector<double>> loss;
  for (const auto& l : layers) cost.push_back(l.bytes), loss.push_back(l.kl);
  KnapsackResult k = choose_under_budget(cost, loss, budget);
  ASSERT_LE(k.bytes, bytes_u);
  Recipe r = parse_recipe({{"stages", search_recipe_stages(layers, cands, k.choice, "rtn")}}, "test");
  run_recipe(*m, r, false);
  EXPECT_LE(m->linear_bits_per_weight(), bpw_u);

  std::vector<int> ids = tokenize_file(m->tokenizer(), eval, TextFormat::Docs);
  PplOptions po;
  po.ctx = 512;
  po.max_windows = 100;
  po.progress = false;
  const double ppl_u = perplexity(*u, ids, po).ppl, ppl_s = perplexity(*m, ids, po).ppl;
  std::printf("uniform int3_g32: %.4f bpw, %lld bytes, ppl %.4f | search: %.4f bpw, %lld bytes, ppl %.4f\n", bpw_u,
              (long long)bytes_u, ppl_u, m->linear_bits_per_weight(), (long long)k.bytes, ppl_s);
  std::printf("recipe: %s\n", r.json.dump().c_str());
  EXPECT_LT(ppl_s, ppl_u);
}

}  // namespace
}  // namespace lmp

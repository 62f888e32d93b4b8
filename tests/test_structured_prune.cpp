// Structured pruning (prune/depth.h, prune/flap.h, prune/slicegpt.h): SliceGPT's computational invariance,
// FLAP's parameter accounting and bias compensation, depth pruning == skipping the block, save/load of the
// smaller models, bad inputs; then the real stories260K model (skipped without ../shared).
#include <cmath>
#include <filesystem>
#include <random>

#include "calib/calib_data.h"
#include "core/error.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "model/forward.h"
#include "prune/depth.h"
#include "prune/flap.h"
#include "prune/slicegpt.h"
#include "prune/structured_common.h"
#include "testutil.h"

namespace lmp {
namespace {

using test::max_abs_diff;

std::unique_ptr<Model> tiny(const std::string& tag, test::TinySpec spec = {}) {
  std::string dir = test::temp_dir(tag);
  test::write_tiny_model(dir, spec);
  return load_model(dir);
}

test::TinySpec spec3() {
  test::TinySpec s;
  s.hidden = 32, s.layers = 3, s.heads = 4, s.kv_heads = 2, s.ffn = 48, s.vocab = 64;
  return s;
}

std::unique_ptr<Model> round_trip(const Model& m, const std::string& tag) {
  std::string dir = test::temp_dir(tag) + "/out";
  save_model(m, dir);
  return load_model(dir);
}

// ---------------------------------------------------------------------------------------------------
// SliceGPT

TEST(SliceGpt, RotationAloneLeavesLogitsUnchanged) {
  for (bool tied : {false, true}) {
    test::TinySpec s = spec3();
    s.tied = tied;
    auto m = tiny(tied ? "sg_inv_tied" : "sg_inv", s);
    std::vector<int> ids = test::random_tokens(1, 24, s.vocab, 7)[0];
    std::vector<float> ref = test::prefill_logits(*m, ids);
    SliceGptReport r = slicegpt(*m, test::random_tokens(4, 16, s.vocab, 3), 0.0, false);
    EXPECT_EQ(r.hidden_after, 32);
    EXPECT_TRUE(m->cfg.residual_shortcuts);
    std::vector<float> got = test::prefill_logits(*m, ids);
    EXPECT_LT(max_abs_diff(got.data(), ref.data(), ref.size()), 1e-4) << "tied=" << tied;
    auto back = round_trip(*m, "sg_inv_rt");
    std::vector<float> got2 = test::prefill_logits(*back, ids);
    EXPECT_EQ(max_abs_diff(got2.data(), got.data(), got.size()), 0.0);
  }
}

TEST(SliceGpt, QwenBiasesSurviveRotation) {
  test::TinySpec s = spec3();
  s.arch = "Qwen2ForCausalLM";
  auto m = tiny("sg_qwen", s);
  std::vector<int> ids = test::random_tokens(1, 20, s.vocab, 9)[0];
  std::vector<float> ref = test::prefill_logits(*m, ids);
  slicegpt(*m, test::random_tokens(4, 16, s.vocab, 4), 0.0, false);
  std::vector<float> got = test::prefill_logits(*m, ids);
  EXPECT_LT(max_abs_diff(got.data(), ref.data(), ref.size()), 1e-4);
}

TEST(SliceGpt, SlicedShapesParamsAndRoundTrip) {
  test::TinySpec s = spec3();
  auto m = tiny("sg_slice", s);
  slicegpt(*m, test::random_tokens(8, 16, s.vocab, 5), 0.25, false);
  const int64_t Cp = 24, V = 64, hs = 8;
  EXPECT_EQ(m->cfg.hidden, Cp);
  EXPECT_FALSE(m->cfg.tie_embeddings);
  // embedding + head (untied) + final norm + per block: 2 norms, q/k/v/o, gate/up/down, 2 shortcuts.
  const int64_t per_block = 2 * Cp + (4 * hs) * Cp * 2 + (2 * hs) * Cp * 2 + 48 * Cp * 3 + 2 * Cp * Cp;
  EXPECT_EQ(m->n_params(), 2 * V * Cp + Cp + 3 * per_block);
  std::vector<int> ids = test::random_tokens(1, 20, s.vocab, 11)[0];
  std::vector<float> a = test::prefill_logits(*m, ids);
  for (float x : a) ASSERT_TRUE(std::isfinite(x));
  auto back = round_trip(*m, "sg_slice_rt");
  EXPECT_EQ(back->cfg.hidden, Cp);
  std::vector<float> b = test::prefill_logits(*back, ids);
  EXPECT_EQ(max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}

// ---------------------------------------------------------------------------------------------------
// FLAP

// Parameters from the kept widths alone (independent of Model::n_params).
int64_t expected_params(const Model& m, const Model& orig) {
  const ModelConfig& c = m.cfg;
  const int64_t C = c.hidden, V = c.vocab, hs = c.head_dim;
  int64_t n = V * C + C + (c.tie_embeddings ? 0 : V * C);
  for (int l = 0; l < c.n_layers; l++) {
    const int64_t H = c.heads(l), KV = c.kv_heads(l), F = c.ffn(l);
    n += 2 * C + 2 * H * hs * C + 2 * KV * hs * C + 3 * F * C;
    if (H < orig.cfg.heads(l)) n += C;   // o_proj bias from the compensation
    if (F < orig.cfg.ffn(l)) n += C;     // down_proj bias
  }
  return n;
}

TEST(Flap, ParameterCountMatchesPlanAndWidths) {
  test::TinySpec s = spec3();
  auto m = tiny("flap_params", s);
  auto orig = tiny("flap_params_orig", s);
  const int64_t before = m->n_params();
  FlapPlan p = flap_prune(*m, test::random_tokens(6, 16, s.vocab, 1), 0.3, true, FlapScope::Layer, false);
  EXPECT_GT(p.removed_params, 0);
  EXPECT_LE(std::abs(p.removed_params - p.target_params), 8 * 32 * 3);  // within half the largest unit
  int biases = 0;
  for (int l = 0; l < 3; l++) {
    EXPECT_EQ(m->cfg.heads(l), 2 * int(p.keep_groups[size_t(l)].size()));  // GQA group of 2 query heads
    EXPECT_EQ(m->cfg.kv_heads(l), int(p.keep_groups[size_t(l)].size()));
    EXPECT_EQ(m->cfg.ffn(l), int(p.keep_channels[size_t(l)].size()));
    biases += (m->cfg.heads(l) < 4) + (m->cfg.ffn(l) < 48);
  }
  EXPECT_EQ(m->n_params(), expected_params(*m, *orig));
  EXPECT_EQ(m->n_params(), before - p.removed_params + biases * 32);
  // Round trip keeps per-layer widths and the o/down biases.
  std::vector<int> ids = test::random_tokens(1, 20, s.vocab, 2)[0];
  std::vector<float> a = test::prefill_logits(*m, ids);
  auto back = round_trip(*m, "flap_rt");
  EXPECT_EQ(back->n_params(), m->n_params());
  EXPECT_EQ(back->cfg.layer_kv_heads, m->cfg.layer_kv_heads);
  std::vector<float> b = test::prefill_logits(*back, ids);
  EXPECT_EQ(max_abs_diff(a.data(), b.data(), a.size()), 0.0);
  // Decoding token by token through the (per-layer sized) KV cache equals the batched forward.
  Forward fw(*back);
  KVCache cache(back->cfg, int(ids.size()));
  std::vector<float> step(size_t(s.vocab));
  for (size_t t = 0; t < ids.size(); t++) {
    fw.tokens(&ids[t], 1, cache, step.data());
    EXPECT_LT(max_abs_diff(step.data(), b.data() + t * size_t(s.vocab), size_t(s.vocab)), 1e-4);
  }
}

TEST(Flap, BiasCompensationReducesBlockOutputError) {
  test::TinySpec s = spec3();
  auto orig = tiny("flap_bc", s);
  Samples calib = test::random_tokens(8, 16, s.vocab, 21);
  FlapStats st = flap_statistics(*orig, calib, false);
  FlapPlan p = flap_plan(*orig, st, 0.4);
  auto with = tiny("flap_bc_with", s), without = tiny("flap_bc_without", s);
  flap_apply(*with, st, p, true);
  flap_apply(*without, st, p, false);
  // Each block's output on the original model's residual stream, over the calibration samples.
  for (int l = 0; l < s.layers; l++) {
    double e_with = 0, e_without = 0;
    for (const auto& ids : calib) {
      const int L = int(ids.size()), C = s.hidden;
      Forward f0(*orig), f1(*with), f2(*without);
      std::vector<float> x(size_t(L) * C);
      f0.embed(ids.data(), L, x.data());
      KVCache c0(orig->cfg, L);
      for (int k = 0; k < l; k++) f0.block(k, x.data(), L, c0);
      std::vector<float> y0 = x, y1 = x, y2 = x;
      KVCache d0(orig->cfg, L), d1(with->cfg, L), d2(without->cfg, L);
      f0.block(l, y0.data(), L, d0);
      f1.block(l, y1.data(), L, d1);
      f2.block(l, y2.data(), L, d2);
      for (size_t i = 0; i < y0.size(); i++) {
        e_with += double(y1[i] - y0[i]) * (y1[i] - y0[i]);
        e_without += double(y2[i] - y0[i]) * (y2[i] - y0[i]);
      }
    }
    EXPECT_LT(e_with, e_without) << "block " << l;
  }
}

TEST(Flap, BadInputs) {
  test::TinySpec s = spec3();
  auto m = tiny("flap_bad", s);
  Samples calib = test::random_tokens(2, 8, s.vocab, 1);
  FlapStats st = flap_statistics(*m, calib, false);
  EXPECT_THROW(flap_plan(*m, st, 0.0), Error);
  EXPECT_THROW(flap_plan(*m, st, 1.0), Error);
  EXPECT_THROW(flap_plan(*m, st, -0.2), Error);
  FlapPlan p = flap_plan(*m, st, 0.2);
  FlapPlan none = p;
  none.keep_groups[1].clear();
  try {
    flap_apply(*m, st, none);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no attention head"), std::string::npos) << e.what();
  }
  FlapPlan empty_mlp = p;
  empty_mlp.keep_channels[0].clear();
  EXPECT_THROW(flap_apply(*m, st, empty_mlp), Error);
  // Even at 99% every layer keeps a KV group and an MLP channel.
  EXPECT_THROW(parse_flap_scope("row"), Error);
  FlapPlan most = flap_plan(*m, st, 0.99, FlapScope::Global);
  for (int l = 0; l < 3; l++) {
    EXPECT_GE(most.keep_groups[size_t(l)].size(), 1u);
    EXPECT_GE(most.keep_channels[size_t(l)].size(), 1u);
  }
}

// ---------------------------------------------------------------------------------------------------
// Depth

TEST(Depth, RemovedBlockEqualsSkippingIt) {
  test::TinySpec s = spec3();
  auto orig = tiny("depth_skip", s);
  std::vector<int> ids = test::random_tokens(1, 20, s.vocab, 5)[0];
  const int L = int(ids.size()), C = s.hidden, V = s.vocab;
  for (int skip = 0; skip < 3; skip++) {
    // Reference: the original model's forward with block `skip` not run.
    Forward fw(*orig);
    KVCache cache(orig->cfg, L);
    std::vector<float> x(size_t(L) * C), ref(size_t(L) * V);
    fw.embed(ids.data(), L, x.data());
    for (int l = 0; l < 3; l++)
      if (l != skip) fw.block(l, x.data(), L, cache);
    fw.head(x.data(), L, ref.data());
    auto m = tiny("depth_skip_m", s);
    remove_blocks(*m, {skip});
    EXPECT_EQ(m->cfg.n_layers, 2);
    std::vector<float> got = test::prefill_logits(*m, ids);
    EXPECT_EQ(max_abs_diff(got.data(), ref.data(), ref.size()), 0.0) << "skip " << skip;
    auto back = round_trip(*m, "depth_rt");
    EXPECT_EQ(back->cfg.n_layers, 2);
    std::vector<float> got2 = test::prefill_logits(*back, ids);
    EXPECT_EQ(max_abs_diff(got2.data(), ref.data(), ref.size()), 0.0);
  }
}

TEST(Depth, RemovesTheBlockWhoseAbsenceHurtsLeast) {
  test::TinySpec s = spec3();
  auto m = tiny("depth_rank", s);
  Samples calib = test::random_tokens(4, 16, s.vocab, 8);
  const int64_t before = m->n_params();
  DepthReport r = depth_prune(*m, calib, 0.34, false);
  ASSERT_EQ(r.nll_without.size(), 3u);
  ASSERT_EQ(r.removed.size(), 1u);
  int best = 0;
  for (int i = 1; i < 3; i++)
    if (r.nll_without[size_t(i)] < r.nll_without[size_t(best)]) best = i;
  EXPECT_EQ(r.removed[0], best);
  // The reported NLL without that block is the pruned model's calibration NLL.
  EXPECT_NEAR(calibration_nll(*m, calib), r.nll_without[size_t(best)], 1e-9);
  EXPECT_EQ(before - m->n_params(), 2 * 32 + 2 * 32 * 32 + 2 * 16 * 32 + 3 * 48 * 32);
}

TEST(Depth, BadInputs) {
  EXPECT_THROW(depth_blocks_to_remove(5, 0.1), Error);  // removes no block
  EXPECT_THROW(depth_blocks_to_remove(5, 0.0), Error);
  EXPECT_THROW(depth_blocks_to_remove(5, 1.0), Error);
  EXPECT_EQ(depth_blocks_to_remove(5, 0.25), 1);
  EXPECT_EQ(depth_blocks_to_remove(4, 0.25), 1);
  auto m = tiny("depth_bad", spec3());
  EXPECT_THROW(remove_blocks(*m, {0, 1, 2}), Error);
  EXPECT_THROW(remove_blocks(*m, {3}), Error);
}

TEST(SliceGpt, BadInputs) {
  EXPECT_THROW(sliced_width(32, 1.0), Error);
  EXPECT_THROW(sliced_width(32, -0.1), Error);
  EXPECT_THROW(sliced_width(32, 0.99), Error);  // width 0
  EXPECT_EQ(sliced_width(64, 0.25), 48);
  auto m = tiny("sg_bad", spec3());
  slicegpt(*m, test::random_tokens(2, 8, 64, 1), 0.25, false);
  EXPECT_THROW(slicegpt(*m, test::random_tokens(2, 8, 64, 1), 0.25, false), Error);  // sliced twice
}

TEST(PruneStructuredCli, ErrorsAndOutput) {
  std::string dir = test::temp_dir("cli_sp");
  test::write_tiny_model(dir + "/m", spec3());
  std::string err;
  EXPECT_EQ(test::run_lmpress("prune --model " + dir + "/m --method flap --sparsity 1.5 --calib random -o " +
                                  dir + "/o", nullptr, &err), 2);
  EXPECT_NE(err.find("sparsity"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("prune --model " + dir + "/m --method width --calib random -o " + dir + "/o",
                              nullptr, &err), 2);
  std::string out;
  ASSERT_EQ(test::run_lmpress("prune --model " + dir + "/m --method depth --sparsity 0.34 --calib random "
                              "--nsamples 2 --seqlen 16 -o " + dir + "/o --json", &out, &err), 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["layers"], 2);
  auto m = load_model(dir + "/o");
  EXPECT_EQ(m->cfg.n_layers, 2);
  EXPECT_EQ(m->recipe["stages"][0]["modifier"], "depth");
}

// ---------------------------------------------------------------------------------------------------
// stories260K (real model): FLAP 20%, SliceGPT 25%, depth −1 block; one full tinystories eval each.

struct Real {
  std::unique_ptr<Model> m;
  Samples calib;
  std::vector<int> eval_ids;
};

Real real_setup(const std::string& models, const std::string& data) {
  Real r;
  r.m = load_model(models);
  CalibOptions co;
  co.path = data + "/calib.txt", co.format = TextFormat::Docs, co.nsamples = 16, co.seqlen = 512;
  r.calib = load_calibration(r.m->tokenizer(), co);
  r.eval_ids = tokenize_file(r.m->tokenizer(), data + "/eval.txt", TextFormat::Docs);
  return r;
}

double eval_ppl(const Model& m, const std::vector<int>& ids) {
  PplOptions o;
  o.ctx = 512, o.progress = false;
  return perplexity(m, ids, o).ppl;
}

TEST(Stories260K, Flap20) {
  std::string dir = LMP_REQUIRE_SHARED("models/stories260K");
  std::string data = LMP_REQUIRE_SHARED("data/tinystories");
  Real r = real_setup(dir, data);
  auto orig = load_model(dir);
  FlapPlan p = flap_prune(*r.m, r.calib, 0.2, true, FlapScope::Layer, false);
  EXPECT_EQ(r.m->n_params(), expected_params(*r.m, *orig));
  EXPECT_NEAR(double(p.removed_params) / double(p.prunable_params), 0.2, 0.01);
  double ppl = eval_ppl(*r.m, r.eval_ids);
  std::printf("stories260K FLAP 20%%: params %lld, ppl %.4f\n", (long long)r.m->n_params(), ppl);
  EXPECT_TRUE(std::isfinite(ppl));
  EXPECT_GT(ppl, 4.2);
  EXPECT_LT(ppl, 60);
}

TEST(Stories260K, SliceGpt25) {
  std::string dir = LMP_REQUIRE_SHARED("models/stories260K");
  std::string data = LMP_REQUIRE_SHARED("data/tinystories");
  Real r = real_setup(dir, data);
  slicegpt(*r.m, r.calib, 0.25, false);
  // hidden 64 → 48; untied head; q 64, k/v 32, ffn 172; two 48×48 shortcuts per block.
  const int64_t Cp = 48;
  EXPECT_EQ(r.m->n_params(), 2 * 512 * Cp + Cp + 5 * (2 * Cp + 2 * 64 * Cp + 2 * 32 * Cp + 3 * 172 * Cp + 2 * Cp * Cp));
  double ppl = eval_ppl(*r.m, r.eval_ids);
  std::printf("stories260K SliceGPT 25%%: params %lld, ppl %.4f\n", (long long)r.m->n_params(), ppl);
  EXPECT_TRUE(std::isfinite(ppl));
  EXPECT_GT(ppl, 4.2);
  EXPECT_LT(ppl, 100);
}

TEST(Stories260K, DepthOneBlock) {
  std::string dir = LMP_REQUIRE_SHARED("models/stories260K");
  std::string data = LMP_REQUIRE_SHARED("data/tinystories");
  Real r = real_setup(dir, data);
  const int64_t before = r.m->n_params();
  DepthReport d = depth_prune(*r.m, r.calib, 0.25, false);
  ASSERT_EQ(d.removed.size(), 1u);
  EXPECT_EQ(r.m->cfg.n_layers, 4);
  EXPECT_EQ(before - r.m->n_params(), 2 * 64 + 64 * 64 * 2 + 32 * 64 * 2 + 3 * 172 * 64);
  double ppl = eval_ppl(*r.m, r.eval_ids);
  std::printf("stories260K depth -1 block (removed %d): params %lld, ppl %.4f\n", d.removed[0],
              (long long)r.m->n_params(), ppl);
  EXPECT_TRUE(std::isfinite(ppl));
  EXPECT_GT(ppl, 4.2);
}

}  // namespace
}  // namespace lmp

// Efficient training (issue 13): mixed precision (bf16/f16 compute on f32 master weights, loss scaling),
// the optimizers' state bytes, initialisation schemes and model growth (stacking, Net2Net width).
// Each test checks a defining property against an independent computation: f32 training for the bf16 loss
// curve, the master weights before a skipped step, gradients computed without scaling, the trainable
// parameter count, the small model's logits for a function-preserving growth, sample std for the init schemes.
#include <cmath>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/half.h"
#include "core/mmap_file.h"
#include "model/model.h"
#include "testutil.h"
#include "train/init_grow.h"
#include "train/losses.h"
#include "train/mixed_precision.h"
#include "train/optim.h"
#include "train/tmodel.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace lmp;
using namespace lmp::train;

namespace {

std::unique_ptr<Model> tiny(const std::string& tag, bool tied, int vocab = 64, int hidden = 16) {
  std::string dir = test::temp_dir(tag);
  test::TinySpec s;
  s.hidden = hidden, s.layers = 2, s.heads = 4, s.kv_heads = 2, s.ffn = 24, s.vocab = vocab, s.tied = tied;
  test::write_tiny_model(dir, s);
  return load_model(dir);
}

// A learnable stream: a noisy repeating pattern of period 7.
TokenStream pattern_stream(int n, int V) {
  std::mt19937 g(5);
  TokenStream s;
  for (int i = 0; i < n; i++) s.ids.push_back(g() % 10 == 0 ? int(g() % uint32_t(V)) : (i % 7) * 3 % V);
  return s;
}

// Gradients of (scale · CE) on one batch, unscaled by the LossScaler, as one flat vector.
std::vector<float> grads(TrainModel<float>& tm, const std::vector<int>& ids, int B, int T, double scale) {
  std::vector<int> tgt(ids.size());
  for (size_t i = 0; i < ids.size(); i++) tgt[i] = (i + 1) % size_t(T) ? ids[i + 1] : -1;
  tm.zero_grad();
  tm.forward(ids.data(), B, T);
  std::vector<float> d(tm.logits().size());
  cross_entropy(d.data(), tm.logits().data(), tgt.data(), B * T, tm.cfg.vocab);
  LossScaleConfig c;
  c.init = scale;
  LossScaler sc(c);
  sc.scale_grad(d.data(), d.size());
  tm.backward(d.data());
  EXPECT_TRUE(sc.unscale(tm.params));
  std::vector<float> g;
  for (const auto& p : tm.params)
    if (p.trainable) g.insert(g.end(), p.g.begin(), p.g.end());
  return g;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// mixed precision

TEST(MixedPrecision, Bf16ComputesOnRoundedValues) {
  auto m = tiny("mp_round", true);
  TrainSetup s;
  s.precision = Precision::BF16;
  TrainModel<float> tm(*m, s);
  std::vector<int> ids = {1, 5, 9, 3, 7, 2, 11, 4};
  tm.forward(ids.data(), 1, 8);
  for (float v : tm.logits()) ASSERT_EQ(v, bf16_to_f32(f32_to_bf16(v)));  // a bf16 GEMM's output
  TrainModel<float> ref(*m, TrainSetup{});
  ref.forward(ids.data(), 1, 8);
  const double d = test::max_abs_diff(tm.logits().data(), ref.logits().data(), ref.logits().size());
  EXPECT_GT(d, 0.0);                                       // the rounding is really applied
  EXPECT_LT(d, 0.05 * test::max_abs(ref.logits().data(), ref.logits().size()));  // and only bf16-sized
}

TEST(MixedPrecision, Bf16LossCurveTracksF32) {
  // 60 steps on a tiny model: every step's bf16 loss within 3% of the f32 run's, and both learn.
  auto m = tiny("mp_curve", false);
  auto data = pattern_stream(3000, m->cfg.vocab);
  TrainOptions o;
  o.steps = 60, o.batch = 4, o.seqlen = 16, o.quiet = true, o.optim.lr = 3e-3;
  TrainModel<float> f32(*m, TrainSetup{});
  TrainResult a = train::train(f32, nullptr, *m, data, o);
  TrainSetup s;
  s.precision = Precision::BF16;
  TrainModel<float> bf(*m, s);
  o.loss_scaling = true;
  TrainResult b = train::train(bf, nullptr, *m, data, o);
  ASSERT_EQ(a.losses.size(), b.losses.size());
  double max_rel = 0;
  bool differs = false;
  for (size_t i = 0; i < a.losses.size(); i++) {
    max_rel = std::max(max_rel, std::abs(b.losses[i] - a.losses[i]) / a.losses[i]);
    differs = differs || b.losses[i] != a.losses[i];
  }
  EXPECT_LE(max_rel, 0.03);
  EXPECT_TRUE(differs);
  EXPECT_LT(a.last_loss, 0.6 * a.first_loss);
  EXPECT_LT(b.last_loss, 0.6 * b.first_loss);
  EXPECT_EQ(b.skipped_steps, 0);  // bf16 has f32's exponent range: S = 65536 never overflows here
}

TEST(MixedPrecision, ScalerSkipsOverflowingStepsAndKeepsMasterWeights) {
  auto m = tiny("mp_skip", false);
  auto data = pattern_stream(2000, m->cfg.vocab);
  TrainSetup s;
  s.precision = Precision::F16;  // max 65504: S = 2^40 overflows every gradient to inf
  TrainModel<float> tm(*m, s);
  std::vector<std::vector<float>> before;
  for (const auto& p : tm.params) before.push_back(p.w);
  TrainOptions o;
  o.steps = 3, o.batch = 2, o.seqlen = 16, o.quiet = true, o.optim.lr = 1e-2, o.loss_scaling = true;
  o.scaler.init = std::ldexp(1.0, 40);
  TrainResult r = train::train(tm, nullptr, *m, data, o);
  EXPECT_EQ(r.skipped_steps, 3);
  EXPECT_EQ(r.loss_scale, std::ldexp(1.0, 37));  // halved once per skipped step
  for (size_t i = 0; i < tm.params.size(); i++) ASSERT_EQ(tm.params[i].w, before[i]) << tm.params[i].name;
  // from 2^30 the scaler backs off until f16 holds the gradients, then training proceeds
  TrainModel<float> tm2(*m, s);
  o.steps = 30, o.scaler.init = std::ldexp(1.0, 30);
  TrainResult r2 = train::train(tm2, nullptr, *m, data, o);
  EXPECT_GE(r2.skipped_steps, 1);
  EXPECT_LT(r2.skipped_steps, 25);
  EXPECT_LT(r2.loss_scale, std::ldexp(1.0, 30));
  EXPECT_LT(r2.last_loss, r2.first_loss);
  // the growth rule: S doubles after `window` good steps, halves on a bad one
  LossScaleConfig c;
  c.init = 8, c.window = 2;
  LossScaler sc(c);
  sc.update(true);
  EXPECT_EQ(sc.scale(), 8);
  sc.update(true);
  EXPECT_EQ(sc.scale(), 16);
  sc.update(false);
  EXPECT_EQ(sc.scale(), 8);
  EXPECT_EQ(sc.skipped(), 1);
}

TEST(MixedPrecision, PowerOfTwoScaleGivesUnscaledGradientsExactly) {
  auto m = tiny("mp_pow2", true);
  std::mt19937 g(3);
  std::vector<int> ids(32);
  for (auto& x : ids) x = int(g() % 64u);
  TrainModel<float> ref(*m, TrainSetup{});
  const std::vector<float> gf = grads(ref, ids, 2, 16, 1.0);  // f32 compute, no scaling
  TrainSetup s;
  s.precision = Precision::BF16;
  TrainModel<float> tm(*m, s);
  // bf16 has f32's exponent range: a power-of-two S neither underflows nor rounds differently, so the
  // unscaled gradients equal the unscaled-compute gradients bit for bit
  const std::vector<float> g1 = grads(tm, ids, 2, 16, 1.0);
  EXPECT_EQ(grads(tm, ids, 2, 16, 1024.0), g1);
  EXPECT_EQ(grads(tm, ids, 2, 16, std::ldexp(1.0, 20)), g1);
  EXPECT_NE(grads(tm, ids, 2, 16, 1000.0), g1);  // a non-power-of-two scale changes the rounding
  EXPECT_LT(test::rel_rms_error(g1.data(), gf.data(), gf.size()), 0.05);  // and bf16 is close to f32
  // f16 (5 exponent bits): gradients 2^14 times smaller (a loss scaled by 2^-14, as tiny as a large model's)
  // fall into the subnormal range and lose their precision; a scale of 2^4 on the same loss recovers them
  s.precision = Precision::F16;
  TrainModel<float> th(*m, s);
  const std::vector<float> lo = grads(th, ids, 2, 16, std::ldexp(1.0, -14)), hi = grads(th, ids, 2, 16, 16.0);
  const double e_lo = test::rel_rms_error(lo.data(), gf.data(), gf.size());
  const double e_hi = test::rel_rms_error(hi.data(), gf.data(), gf.size());
  EXPECT_GT(e_lo, 10 * e_hi) << e_lo << " vs " << e_hi;
  EXPECT_LT(e_hi, 0.01);
}

// ---------------------------------------------------------------------------------------------------
// optimizer state

TEST(OptimState, ReportedBytesAreExact) {
  auto m = tiny("opt_bytes", false);
  for (Mode mode : {Mode::Full, Mode::Lora}) {
    TrainSetup s;
    s.mode = mode;
    TrainModel<float> tm(*m, s);
    int64_t n = 0;  // trainable values, counted from the tensors themselves
    for (const auto& p : tm.params)
      if (p.trainable) n += int64_t(p.w.size());
    ASSERT_GT(n, 0);
    OptimConfig c;
    EXPECT_EQ(Optimizer<float>(c, tm.params).state_bytes(), 8 * n);  // m and v, f32
    c.kind = "lion";
    EXPECT_EQ(Optimizer<float>(c, tm.params).state_bytes(), 4 * n);  // m only
    EXPECT_EQ(Optimizer<double>(c, TrainModel<double>(*m, s).params).state_bytes(), 8 * n);
    TrainOptions o;
    o.steps = 1, o.batch = 1, o.seqlen = 8, o.quiet = true, o.optim.kind = "lion";
    EXPECT_EQ(train::train(tm, nullptr, *m, pattern_stream(100, m->cfg.vocab), o).optimizer_state_bytes, 4 * n);
  }
}

// ---------------------------------------------------------------------------------------------------
// initialisation and growth

TEST(InitGrow, SchemesHaveTheirStatedStd) {
  auto base = tiny("init_base", true);
  auto std_of = [](const Linear& L) {
    std::vector<float> w = L.w->dense();
    double ss = 0;
    for (float v : w) ss += double(v) * v;
    return std::sqrt(ss / double(w.size()));
  };
  FreshSpec s;
  s.hidden = 64, s.layers = 4, s.heads = 8, s.kv_heads = 4, s.ffn = 128;
  for (InitScheme sc : {InitScheme::Normal, InitScheme::Scaled, InitScheme::Small}) {
    s.init = sc;
    auto m = fresh_model(*base, s);
    EXPECT_EQ(m->cfg.hidden, 64);
    EXPECT_EQ(m->cfg.head_dim, 8);
    EXPECT_EQ(m->blocks.size(), 4u);
    EXPECT_EQ(m->dir, base->dir);  // the base's tokenizer
    const double in_std = sc == InitScheme::Small ? std::sqrt(2.0 / (5.0 * 64)) : 0.02;
    const double out_std = sc == InitScheme::Scaled ? 0.02 / std::sqrt(8.0) : in_std;
    EXPECT_NEAR(std_of(m->blocks[1].at(LinearKind::Q)), in_std, 0.05 * in_std) << init_name(sc);
    EXPECT_NEAR(std_of(m->blocks[1].at(LinearKind::Down)), out_std, 0.05 * out_std) << init_name(sc);
    EXPECT_NEAR(std_of(m->blocks[2].at(LinearKind::O)), out_std, 0.05 * out_std) << init_name(sc);
    for (float v : m->blocks[0].attn_norm) ASSERT_EQ(v, 1.0f);
  }
  s.hidden = 60;  // not a multiple of 8 heads
  EXPECT_THROW(fresh_model(*base, s), Error);
}

TEST(InitGrow, WidthGrowthIsFunctionPreserving) {
  std::vector<int> ids = {1, 7, 3, 12, 40, 2, 9, 9, 33, 5, 17, 60};
  for (bool tied : {true, false})
    for (int H : {32, 48}) {
      auto small = tiny("grow_w", tied);
      auto big = grow_width(*small, H, 3);
      EXPECT_EQ(big->cfg.hidden, H);
      EXPECT_EQ(big->cfg.intermediate, small->cfg.intermediate * H / 16);
      const auto a = test::prefill_logits(*small, ids), b = test::prefill_logits(*big, ids);
      EXPECT_LE(test::max_rel_diff(b.data(), a.data(), a.size()), 1e-5) << "tied " << tied << " H " << H;
      // replicas are not identical (the random split breaks symmetry): columns j and 16 + j of q_proj differ
      std::vector<float> q = big->blocks[0].at(LinearKind::Q).w->dense();
      EXPECT_NE(q[0], q[16]);
      // stored and loaded again: still the same function
      std::string dir = test::temp_dir("grow_w_saved");
      save_model(*big, dir);
      auto re = load_model(dir);
      const auto c = test::prefill_logits(*re, ids);
      EXPECT_LE(test::max_rel_diff(c.data(), a.data(), a.size()), 1e-5);
    }
  auto small = tiny("grow_w_bad", true);
  EXPECT_THROW(grow_width(*small, 20, 0), Error);  // not a multiple of 16
  EXPECT_THROW(grow(*small, "width:abc", 0), Error);
  EXPECT_THROW(grow(*small, "depth:1x", 0), Error);
}

TEST(InitGrow, DepthGrowthStacksTheTrainedBlocks) {
  auto small = tiny("grow_d", false);
  auto big = grow(*small, "depth:2x", 0);
  ASSERT_EQ(big->cfg.n_layers, 4);
  ASSERT_EQ(big->blocks.size(), 4u);
  for (int i = 0; i < 4; i++)
    for (int k = 0; k < kLinearsPerBlock; k++)
      ASSERT_EQ(big->blocks[size_t(i)].lin[size_t(k)].w->dense(), small->blocks[size_t(i % 2)].lin[size_t(k)].w->dense());
  EXPECT_EQ(big->blocks[3].ffn_norm, small->blocks[1].ffn_norm);
  EXPECT_EQ(big->embed, small->embed);
  EXPECT_EQ(big->lm_head.w->dense(), small->lm_head.w->dense());
}

// ---------------------------------------------------------------------------------------------------
// CLI

TEST(TrainEffCli, PretrainGrowAndMixedPrecisionRun) {
  const std::string fixture = std::string(LMP_SOURCE_DIR) + "/tests/data/tokenizer/bytelevel/tokenizer.json";
  auto base = tiny("eff_cli", true, 290);
  const std::string dir = base->dir;
  fs::copy_file(fixture, dir + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::string text;
  for (int i = 0; i < 60; i++) text += "the cat sat on the mat and the dog ran. ";
  write_file_atomic(dir + "/data.txt", text.data(), text.size());
  const std::string common = fmt::format("--data {}/data.txt --format text --batch 2 --seqlen 16 --json", dir);
  std::string so, err;
  int rc = test::run_lmpress(fmt::format("train pretrain --config-from {} --hidden 16 --layers 1 --heads 2 --kv-heads 1 "
                                         "--ffn 32 --init small --steps 4 {} -o {}/p", dir, common, dir), &so, &err);
  ASSERT_EQ(rc, 0) << err;
  auto j = nlohmann::json::parse(so);
  EXPECT_EQ(j["optimizer_state_bytes"].get<int64_t>(), 8 * j["trainable_params"].get<int64_t>());
  EXPECT_EQ(load_model(dir + "/p")->cfg.n_layers, 1);
  rc = test::run_lmpress(fmt::format("train pretrain --grow-from {}/p --grow depth:2x --precision bf16 --optim lion "
                                     "--steps 3 {} -o {}/g", dir, common, dir), &so, &err);
  ASSERT_EQ(rc, 0) << err;
  j = nlohmann::json::parse(so);
  EXPECT_EQ(j["precision"], "bf16");
  EXPECT_EQ(j["optimizer_state_bytes"].get<int64_t>(), 4 * j["trainable_params"].get<int64_t>());
  EXPECT_EQ(j["skipped_steps"], 0);
  EXPECT_EQ(load_model(dir + "/g")->cfg.n_layers, 2);
  rc = test::run_lmpress(fmt::format("train full --model {} --precision fp8 {} -o {}/x", dir, common, dir), nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("--precision"), std::string::npos) << err;
  rc = test::run_lmpress(fmt::format("train pretrain --grow-from {}/p --grow width:20 {} -o {}/x", dir, common, dir),
                         nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("width:20"), std::string::npos) << err;
}

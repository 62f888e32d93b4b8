// Training (src/train/): every backward against central finite differences in double precision, the
// training forward against the inference forward, LoRA merge, STE/LSQ and PEQA gradients, AdamW/Lion steps
// by hand, checkpoint resume, divergence handling and bad input.
// Gradient checks: h = 1e-5 central differences on the double instantiation; the tolerance is
// max|analytic − numeric| / max|numeric| ≤ 1e-4 over each checked tensor (max_rel_diff in testutil.h).
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "testutil.h"
#include "train_testutil.h"
#include "train/fakequant.h"
#include "train/layers.h"
#include "train/losses.h"
#include "train/lora.h"
#include "train/optim.h"
#include "train/tmodel.h"
#include "train/trainer.h"

namespace fs = std::filesystem;
using namespace lmp;
using namespace lmp::train;

namespace {

constexpr double kTol = 1e-4;
constexpr double kH = 1e-5;

using test::rnd;

double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<float> fa(a.begin(), a.end()), fb(b.begin(), b.end());
  return test::max_rel_diff(fa.data(), fb.data(), fa.size());
}

// Numeric gradient of f with respect to the entries idx of x (all when idx is empty).
std::vector<double> numeric(const std::function<double()>& f, std::vector<double>& x, const std::vector<size_t>& idx) {
  std::vector<double> g;
  auto one = [&](size_t i) {
    const double x0 = x[i];
    x[i] = x0 + kH;
    const double fp = f();
    x[i] = x0 - kH;
    const double fm = f();
    x[i] = x0;
    g.push_back((fp - fm) / (2 * kH));
  };
  if (idx.empty())
    for (size_t i = 0; i < x.size(); i++) one(i);
  else
    for (size_t i : idx) one(i);
  return g;
}

// L = Σ r ⊙ out: the backward of out gets dout = r.
double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// layer gradient checks

TEST(TrainGrad, RmsNorm) {
  const int N = 3, C = 7;
  auto x = rnd(N * C, 1), w = rnd(C, 2), r = rnd(N * C, 3);
  std::vector<double> out(N * C), rstd(N);
  auto f = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5);
    return dot(out, r);
  };
  f();
  std::vector<double> dx(N * C, 0), dw(C, 0);
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_LE(rel_err(dx, numeric(f, x, {})), kTol);
  EXPECT_LE(rel_err(dw, numeric(f, w, {})), kTol);
}

TEST(TrainGrad, Matmul) {
  const int N = 4, I = 5, O = 3;
  auto x = rnd(N * I, 1), W = rnd(O * I, 2), b = rnd(O, 3), r = rnd(N * O, 4);
  std::vector<double> out(N * O);
  auto f = [&] {
    matmul_forward(out.data(), x.data(), W.data(), b.data(), N, I, O);
    return dot(out, r);
  };
  std::vector<double> dx(N * I, 0), dW(O * I, 0), db(O, 0);
  matmul_backward(dx.data(), dW.data(), db.data(), r.data(), x.data(), W.data(), N, I, O);
  EXPECT_LE(rel_err(dx, numeric(f, x, {})), kTol);
  EXPECT_LE(rel_err(dW, numeric(f, W, {})), kTol);
  EXPECT_LE(rel_err(db, numeric(f, b, {})), kTol);
}

TEST(TrainGrad, RopeMatchesInferenceAndInverts) {
  ModelConfig c;
  c.head_dim = 8;
  c.rope_theta = 10000;
  Rope rope(c);
  const int T = 5, heads = 2, hs = 8, N = 2 * T;
  auto cs = rope_table<double>(rope, hs, T);
  auto x = rnd(size_t(N) * heads * hs, 1), r = rnd(size_t(N) * heads * hs, 2);
  // forward agrees with model/forward.cpp's Rope::apply at position n mod T
  std::vector<double> y = x;
  rope_forward(y.data(), cs.data(), N, T, heads, hs);
  for (int n = 0; n < N; n++) {
    std::vector<float> xf(x.begin() + n * heads * hs, x.begin() + (n + 1) * heads * hs);
    rope.apply(xf.data(), heads, n % T);
    for (int i = 0; i < heads * hs; i++) EXPECT_NEAR(xf[size_t(i)], y[size_t(n * heads * hs + i)], 1e-5);
  }
  auto f = [&] {
    std::vector<double> t = x;
    rope_forward(t.data(), cs.data(), N, T, heads, hs);
    return dot(t, r);
  };
  std::vector<double> d = r;
  rope_backward(d.data(), cs.data(), N, T, heads, hs);
  EXPECT_LE(rel_err(d, numeric(f, x, {})), kTol);
}

TEST(TrainGrad, AttentionGqa) {
  const int B = 2, T = 4, H = 4, KV = 2, hs = 3;
  auto q = rnd(size_t(B) * T * H * hs, 1), k = rnd(size_t(B) * T * KV * hs, 2), v = rnd(size_t(B) * T * KV * hs, 3);
  auto r = rnd(size_t(B) * T * H * hs, 4);
  std::vector<double> out(r.size()), att(size_t(B) * H * T * T);
  auto f = [&] {
    attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV, hs);
    return dot(out, r);
  };
  f();
  std::vector<double> dq(q.size(), 0), dk(k.size(), 0), dv(v.size(), 0);
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), att.data(), q.data(), k.data(), v.data(), B, T, H, KV,
                     hs);
  EXPECT_LE(rel_err(dq, numeric(f, q, {})), kTol);
  EXPECT_LE(rel_err(dk, numeric(f, k, {})), kTol);
  EXPECT_LE(rel_err(dv, numeric(f, v, {})), kTol);
}

TEST(TrainGrad, SwiGlu) {
  const int n = 20;
  auto g = rnd(n, 1, 2.0), u = rnd(n, 2), r = rnd(n, 3);
  std::vector<double> out(n);
  auto f = [&] {
    swiglu_forward(out.data(), g.data(), u.data(), n);
    return dot(out, r);
  };
  std::vector<double> dg(n, 0), du(n, 0);
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), n);
  EXPECT_LE(rel_err(dg, numeric(f, g, {})), kTol);
  EXPECT_LE(rel_err(du, numeric(f, u, {})), kTol);
}

TEST(TrainGrad, Losses) {
  const int N = 4, V = 9;
  auto zs = rnd(N * V, 1, 2.0), zt = rnd(N * V, 2, 2.0);
  std::vector<int> tgt = {3, -1, 0, 8};
  std::vector<double> d(N * V);
  auto ce = [&] { return cross_entropy(d.data(), zs.data(), tgt.data(), N, V); };
  ce();
  auto dce = d;
  EXPECT_LE(rel_err(dce, numeric(ce, zs, {})), kTol);
  for (LossKind k : {LossKind::FKL, LossKind::RKL, LossKind::JSD, LossKind::CAKLD}) {
    for (double beta : {0.1, 0.5, 0.9}) {
      auto f = [&] { return kd_loss(k, d.data(), zs.data(), zt.data(), tgt.data(), N, V, beta); };
      f();
      auto an = d;
      EXPECT_LE(rel_err(an, numeric(f, zs, {})), kTol) << loss_name(k) << " beta " << beta;
    }
  }
  // KL(t‖t) = 0 and JSD(t, t) = 0
  EXPECT_NEAR(kd_loss(LossKind::FKL, d.data(), zt.data(), zt.data(), nullptr, N, V), 0, 1e-12);
  EXPECT_NEAR(kd_loss(LossKind::JSD, d.data(), zt.data(), zt.data(), nullptr, N, V), 0, 1e-12);
}

TEST(TrainGrad, HiddenAlignment) {
  const int N = 5, Cs = 4, Ct = 6;
  auto hs = rnd(N * Cs, 1), ht = rnd(N * Ct, 2), P = rnd(Ct * Cs, 3);
  auto f = [&] { return hidden_align_loss<double>(nullptr, nullptr, hs.data(), ht.data(), P.data(), N, Cs, Ct); };
  std::vector<double> dh(hs.size(), 0), dP(P.size(), 0);
  hidden_align_loss(dh.data(), dP.data(), hs.data(), ht.data(), P.data(), N, Cs, Ct);
  EXPECT_LE(rel_err(dh, numeric(f, hs, {})), kTol);
  EXPECT_LE(rel_err(dP, numeric(f, P, {})), kTol);
}

// ---------------------------------------------------------------------------------------------------
// STE / LSQ / PEQA

TEST(TrainQuant, SteAndLsqMatchDefinition) {
  // b = 2 (maxq 3), one group of 4, s = 0.5, z = 1:
  // w/s = 0.4, 1.48, −1.8, 10 → round + z = 1, 2, −1 (clipped to 0), 11 (clipped to 3)
  QuantGrid g{2, false, 0};
  std::vector<double> W = {0.2, 0.74, -0.9, 5.0}, s = {0.5}, What(4), dW(4, 0), ds(1, 0), dWhat(4, 1.0);
  std::vector<int> z = {1};
  fakequant_forward(What.data(), W.data(), s.data(), z.data(), 1, 4, g);
  EXPECT_DOUBLE_EQ(What[0], 0.0);
  EXPECT_DOUBLE_EQ(What[1], 0.5);
  EXPECT_DOUBLE_EQ(What[2], -0.5);
  EXPECT_DOUBLE_EQ(What[3], 1.0);
  fakequant_backward(dW.data(), ds.data(), dWhat.data(), W.data(), s.data(), z.data(), 1, 4, g);
  // STE: gradient passes inside the grid only
  EXPECT_EQ(dW, (std::vector<double>{1, 1, 0, 0}));
  // LSQ: (q − z) − w/s inside, (q_clip − z) clipped: (0 − 0.4) + (1 − 1.48) + (0 − 1) + (3 − 1)
  EXPECT_NEAR(ds[0], -0.4 - 0.48 - 1.0 + 2.0, 1e-12);
}

TEST(TrainQuant, PeqaScaleGradient) {
  const int O = 3, I = 10;
  QuantGrid g{3, false, 4};  // ragged last group (10 = 4 + 4 + 2)
  const int G = int(g.ngroups(I));
  std::vector<uint8_t> q(O * I);
  std::mt19937 rng(5);
  for (auto& c : q) c = uint8_t(rng() % 8);
  std::vector<int> z(O * G);
  for (auto& v : z) v = int(rng() % 8);
  auto s = rnd(O * G, 2, 0.1), r = rnd(O * I, 3);
  std::vector<double> What(O * I);
  auto f = [&] {
    peqa_forward(What.data(), q.data(), s.data(), z.data(), O, I, g);
    return dot(What, r);
  };
  std::vector<double> ds(s.size(), 0);
  peqa_backward(ds.data(), r.data(), q.data(), z.data(), O, I, g);
  EXPECT_LE(rel_err(ds, numeric(f, s, {})), kTol);
}

TEST(TrainQuant, AsymmetricClipNoWorseThanMinMax) {
  auto w = test::random_vector(4 * 64, 7, 0.1f);
  w[5] = 1.5f;  // an outlier
  QuantGrid g{2, false, 32};
  std::vector<float> s1(8), s2(8);
  std::vector<int> z1(8), z2(8);
  init_group_params(w.data(), 4, 64, g, false, s1.data(), z1.data());
  init_group_params(w.data(), 4, 64, g, true, s2.data(), z2.data());
  auto err = [&](const std::vector<float>& s, const std::vector<int>& z) {
    std::vector<float> wh(w.size());
    fakequant_forward(wh.data(), w.data(), s.data(), z.data(), 4, 64, g);
    double e = 0;
    for (size_t i = 0; i < w.size(); i++) e += double(w[i] - wh[i]) * (w[i] - wh[i]);
    return e;
  };
  EXPECT_LT(err(s2, z2), err(s1, z1));
}

// ---------------------------------------------------------------------------------------------------
// whole model

namespace {

struct Tiny {
  std::string dir;
  std::unique_ptr<Model> m;
};

Tiny tiny(bool tied, const std::string& tag, int vocab = 64) {
  Tiny t;
  t.dir = test::temp_dir(tag);
  test::TinySpec s;
  s.hidden = 16, s.layers = 2, s.heads = 4, s.kv_heads = 2, s.ffn = 24, s.vocab = vocab, s.tied = tied;
  test::write_tiny_model(t.dir, s);
  t.m = load_model(t.dir);
  return t;
}

using test::ids_for;
using test::model_loss;

// Checks up to 8 random entries of every trainable tensor against central differences.
void check_model_grads(TrainModel<double>& tm, const std::vector<int>& ids, int B, int T) {
  model_loss(tm, ids, B, T, true);
  std::mt19937 g(11);
  int checked = 0;
  for (auto& p : tm.params) {
    if (!p.trainable) continue;
    std::vector<size_t> idx;
    for (int k = 0; k < 8; k++) idx.push_back(size_t(g() % p.size()));
    std::vector<double> an;
    for (size_t i : idx) an.push_back(p.g[i]);
    auto num = numeric([&] { return model_loss(tm, ids, B, T, false); }, p.w, idx);
    EXPECT_LE(rel_err(an, num), kTol) << p.name;
    checked++;
  }
  EXPECT_GT(checked, 0);
}

}  // namespace

TEST(TrainModelTest, ForwardMatchesInference) {
  for (bool tied : {false, true}) {
    Tiny t = tiny(tied, "tr_fwd");
    TrainSetup s;
    TrainModel<float> tm(*t.m, s);
    const int T = 9;
    auto ids = ids_for(T, t.m->cfg.vocab, 3);
    tm.forward(ids.data(), 1, T);
    Forward fw(*t.m);
    KVCache cache(t.m->cfg, T);
    std::vector<float> ref(size_t(T) * t.m->cfg.vocab);
    fw.tokens(ids.data(), T, cache, ref.data());
    EXPECT_LE(test::max_abs_diff(tm.logits().data(), ref.data(), ref.size()), 1e-4) << "tied " << tied;
  }
}

TEST(TrainModelTest, WholeModelGradientDouble) {
  for (bool tied : {false, true}) {
    Tiny t = tiny(tied, "tr_grad");
    TrainSetup s;
    TrainModel<double> tm(*t.m, s);
    check_model_grads(tm, ids_for(2 * 5, t.m->cfg.vocab, 1), 2, 5);
  }
}

TEST(TrainModelTest, RecomputeGivesSameGradients) {
  Tiny t = tiny(false, "tr_rec");
  TrainSetup s;
  TrainModel<double> a(*t.m, s);
  s.recompute = true;
  TrainModel<double> b(*t.m, s);
  auto ids = ids_for(12, t.m->cfg.vocab, 2);
  model_loss(a, ids, 2, 6, true);
  model_loss(b, ids, 2, 6, true);
  for (size_t i = 0; i < a.params.size(); i++)
    for (size_t k = 0; k < a.params[i].g.size(); k++) ASSERT_EQ(a.params[i].g[k], b.params[i].g[k]) << a.params[i].name;
}

TEST(TrainModelTest, LoraAndPeqaGradientsDouble) {
  Tiny t = tiny(false, "tr_lora");
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = 3;
  s.targets = ".*(q_proj|down_proj)";
  TrainModel<double> tm(*t.m, s);
  for (auto& p : tm.params)  // B starts at 0; make it non-zero so A's gradient is exercised
    if (p.name.ends_with("lora_B")) p.w = rnd(p.size(), 9, 0.3);
  int adapters = 0;
  for (auto& p : tm.params) adapters += p.trainable;
  EXPECT_EQ(adapters, 2 * 2 * 2);  // 2 layers × 2 targets × (A, B)
  check_model_grads(tm, ids_for(10, t.m->cfg.vocab, 4), 2, 5);

  s.mode = Mode::Peqa;
  s.grid = {3, false, 0};
  s.targets = ".*";
  TrainModel<double> pe(*t.m, s);
  check_model_grads(pe, ids_for(10, t.m->cfg.vocab, 5), 2, 5);
}

TEST(TrainModelTest, LoraMergeEqualsAdapterModel) {
  Tiny t = tiny(false, "tr_merge");
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = 4;
  TrainModel<float> tm(*t.m, s);
  for (auto& p : tm.params)
    if (p.name.ends_with("lora_B")) {
      auto v = test::random_vector(p.size(), 3, 0.2f);
      p.w.assign(v.begin(), v.end());
    }
  const int T = 8;
  auto ids = ids_for(T, t.m->cfg.vocab, 6);
  tm.forward(ids.data(), 1, T);
  auto merged = tm.to_model(*t.m);
  EXPECT_EQ(merged->blocks[0].lin[0].w->format(), "f32");
  Forward fw(*merged);
  KVCache cache(merged->cfg, T);
  std::vector<float> ref(size_t(T) * merged->cfg.vocab);
  fw.tokens(ids.data(), T, cache, ref.data());
  EXPECT_LE(test::max_abs_diff(tm.logits().data(), ref.data(), ref.size()), 1e-5);
  // and the adapters changed the model
  Forward f0(*t.m);
  KVCache c0(t.m->cfg, T);
  std::vector<float> base(ref.size());
  f0.tokens(ids.data(), T, c0, base.data());
  EXPECT_GT(test::max_abs_diff(base.data(), ref.data(), ref.size()), 1e-2);
}

TEST(TrainModelTest, QloraAndLoftQ) {
  Tiny t = tiny(false, "tr_qlora");
  const std::vector<float> W = t.m->blocks[0].lin[0].w->dense();
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = 4;
  s.base_grid = {2, false, 0};
  s.qlora = true;
  TrainModel<float> q(*t.m, s);
  s.loftq_iters = 3;
  TrainModel<float> lq(*t.m, s);
  auto err = [&](const TrainModel<float>& tm) {
    auto Wm = tm.merged_weight(tm.linear(0, 0));
    return test::rel_rms_error(Wm.data(), W.data(), W.size());
  };
  EXPECT_EQ(q.linear(0, 0).W, -1);  // no f32 copy of the base: a QIntMatrix, dequantized on the fly
  ASSERT_TRUE(q.linear(0, 0).qbase);
  // LoftQ's adapters absorb part of the 2-bit error that plain QLoRA (B = 0) starts with
  EXPECT_LT(err(lq), 0.8 * err(q));
}

TEST(TrainModelTest, QatExportMatchesFakeQuant) {
  Tiny t = tiny(true, "tr_qat");
  TrainSetup s;
  s.mode = Mode::Qat;
  s.grid = {4, false, 0};  // group 0: widths 16/24 are not multiples of 32
  TrainModel<float> tm(*t.m, s);
  const int T = 6;
  auto ids = ids_for(T, t.m->cfg.vocab, 7);
  tm.forward(ids.data(), 1, T);
  auto qm = tm.to_model(*t.m);
  EXPECT_EQ(qm->blocks[1].lin[6].w->format(), "int4_row_asym");
  std::vector<float> fq(size_t(tm.linear(1, 6).O) * tm.linear(1, 6).I);
  qm->blocks[1].lin[6].w->dequantize(fq.data());
  const auto& L = tm.linear(1, 6);
  std::vector<float> ref(fq.size());
  fakequant_forward(ref.data(), tm.params[size_t(L.W)].w.data(), tm.params[size_t(L.scale)].w.data(), L.zero.data(),
                    L.O, L.I, L.grid);
  EXPECT_LE(test::max_rel_diff(fq.data(), ref.data(), fq.size()), 1e-3);  // f16 rounding of the scales
}

// ---------------------------------------------------------------------------------------------------
// optimizers

TEST(TrainOptim, AdamWAndLionOneStepByHand) {
  std::vector<Param<float>> ps(1);
  ps[0].name = "w";
  ps[0].shape = {1};
  ps[0].w = {1.0f};
  ps[0].g = {0.5f};
  OptimConfig c;
  c.lr = 0.1, c.beta1 = 0.9, c.beta2 = 0.999, c.eps = 1e-8, c.weight_decay = 0.01;
  Optimizer<float> adam(c, ps);
  adam.step(ps, c.lr);
  // m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25 → w = 1 − 0.1·(0.5/0.5 + 0.01·1) = 0.899
  EXPECT_NEAR(ps[0].w[0], 0.899, 1e-6);
  ps[0].w = {1.0f};
  c.kind = "lion";
  c.beta2 = 0.99;
  Optimizer<float> lion(c, ps);
  ps[0].g = {-0.5f};
  lion.step(ps, c.lr);
  // c = −0.05 → sign −1 → w = 1 − 0.1·(−1 + 0.01) = 1.099
  EXPECT_NEAR(ps[0].w[0], 1.099, 1e-6);
  // clipping to norm 1 of g = (3, 4)
  ps[0].w = {0, 0};
  ps[0].g = {3, 4};
  c.clip = 1;
  Optimizer<float> clip(c, ps);
  EXPECT_NEAR(clip.clip_grad_norm(ps), 5.0, 1e-6);
  EXPECT_NEAR(ps[0].g[0], 0.6, 1e-6);
  EXPECT_NEAR(ps[0].g[1], 0.8, 1e-6);
}

// ---------------------------------------------------------------------------------------------------
// the loop: resume, divergence, bad input

namespace {
TokenStream random_stream(int n, int V) {
  TokenStream s;
  s.ids = ids_for(n, V, 42);
  return s;
}
}  // namespace

TEST(TrainLoop, ResumeEqualsStraightRun) {
  Tiny t = tiny(false, "tr_resume");
  TrainSetup s;
  s.mode = Mode::Qat;
  s.grid = {4, false, 0};
  TrainOptions o;
  o.steps = 4, o.batch = 2, o.seqlen = 8, o.quiet = true, o.optim.lr = 1e-2;
  auto data = random_stream(500, t.m->cfg.vocab);
  TrainModel<float> a(*t.m, s);
  train::train(a, nullptr, *t.m, data, o);
  std::string ck = test::temp_dir("tr_resume_ck") + "/c.safetensors";
  TrainModel<float> b(*t.m, s);
  o.steps = 2, o.ckpt = ck, o.ckpt_every = 1;
  train::train(b, nullptr, *t.m, data, o);
  TrainModel<float> c(*t.m, s);
  o.steps = 4, o.resume = ck;
  o.ckpt = "";
  TrainResult r = train::train(c, nullptr, *t.m, data, o);
  EXPECT_EQ(r.steps_done, 4);
  for (size_t i = 0; i < a.params.size(); i++) ASSERT_EQ(a.params[i].w, c.params[i].w) << a.params[i].name;
}

TEST(TrainLoop, LossDecreasesAndDistillationRuns) {
  Tiny t = tiny(false, "tr_kd");
  TrainSetup ts;
  ts.freeze_all = true;
  TrainModel<float> teacher(*t.m, ts);
  TrainSetup s;
  s.drop_layers = {1};
  const int B = 4, T = 8, N = B * T, V = t.m->cfg.vocab;
  auto probe = ids_for(N, V, 77);  // a fixed held-out batch
  teacher.forward(probe.data(), B, T);
  const std::vector<float> tl = teacher.logits();
  std::vector<float> d(tl.size());
  for (LossKind k : {LossKind::FKL, LossKind::RKL, LossKind::JSD}) {
    TrainModel<float> st(*t.m, s);
    st.forward(probe.data(), B, T);
    const double before = kd_loss(k, d.data(), st.logits().data(), tl.data(), nullptr, N, V);
    TrainOptions o;
    o.steps = 40, o.batch = B, o.seqlen = T, o.quiet = true, o.optim.lr = 3e-3, o.loss = k;
    train::train(st, &teacher, *t.m, random_stream(800, V), o);
    st.forward(probe.data(), B, T);
    const double after = kd_loss(k, d.data(), st.logits().data(), tl.data(), nullptr, N, V);
    EXPECT_LT(after, 0.7 * before) << loss_name(k);
  }
}

TEST(TrainLoop, NanLossStopsAndKeepsLastGoodCheckpoint) {
  Tiny t = tiny(false, "tr_nan");
  TrainSetup s;
  TrainModel<float> st(*t.m, s);
  TrainOptions o;
  o.steps = 10, o.batch = 2, o.seqlen = 8, o.quiet = true, o.optim.lr = 1e30, o.optim.clip = 0;
  o.ckpt = test::temp_dir("tr_nan_ck") + "/c.safetensors";
  o.ckpt_every = 1;
  try {
    train::train(st, nullptr, *t.m, random_stream(300, t.m->cfg.vocab), o);
    FAIL() << "expected divergence";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("diverged"), std::string::npos) << msg;
    EXPECT_NE(msg.find("last good checkpoint"), std::string::npos) << msg;
  }
  TrainModel<float> again(*t.m, s);
  Optimizer<float> opt(o.optim, again.params);
  int step = load_checkpoint(o.ckpt, again, opt);
  EXPECT_GE(step, 1);
  for (const auto& p : again.params)
    for (float v : p.w) ASSERT_TRUE(std::isfinite(v)) << p.name;
}

TEST(TrainLoop, BadInput) {
  Tiny t = tiny(false, "tr_bad");
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = 0;
  EXPECT_THROW(TrainModel<float>(*t.m, s), Error);
  s.rank = -2;
  EXPECT_THROW(TrainModel<float>(*t.m, s), Error);
  std::string err;
  EXPECT_EQ(test::run_lmpress(fmt::format("train lora --model {} --data {}/config.json --rank 0 -o {}/o", t.dir, t.dir,
                                          t.dir), nullptr, &err), 2);
  EXPECT_NE(err.find("rank"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("train sideways --model x -o y", nullptr, &err), 2);
}

TEST(TrainLoop, TokenizerMismatch) {
  const std::string fixture = std::string(LMP_SOURCE_DIR) + "/tests/data/tokenizer/bytelevel/tokenizer.json";
  Tiny a = tiny(false, "tr_tokA", 290), b = tiny(false, "tr_tokB", 290), c = tiny(false, "tr_tokC", 300);
  nlohmann::json j = nlohmann::json::parse(read_file(fixture));
  auto put = [&](const Tiny& t, const nlohmann::json& tj) {
    std::string text = tj.dump();
    write_file_atomic(t.dir + "/tokenizer.json", text.data(), text.size());
  };
  put(a, j);
  put(c, j);
  // b: same vocabulary size, two pieces' ids swapped → different ids for the probe strings
  nlohmann::json jb = j;
  auto& voc = jb["model"]["vocab"];
  int e = voc["e"], o = voc["o"];
  voc["e"] = o, voc["o"] = e;
  put(b, jb);
  auto ma = load_model(a.dir), mb = load_model(b.dir), mc = load_model(c.dir), ma2 = load_model(a.dir);
  EXPECT_NO_THROW(check_same_tokenizer(*ma, *ma2));
  for (auto* other : {&mb, &mc}) {
    try {
      check_same_tokenizer(*ma, **other);
      FAIL() << "expected a tokenizer mismatch";
    } catch (const Error& err) {
      EXPECT_NE(std::string(err.what()).find("teacher and student tokenizers differ"), std::string::npos);
    }
  }
}

TEST(TrainCli, QatRunsAndExportsLoadableModel) {
  Tiny t = tiny(false, "tr_cli");
  const std::string fixture = std::string(LMP_SOURCE_DIR) + "/tests/data/tokenizer/bytelevel/tokenizer.json";
  // a model with the fixture tokenizer (vocab 290) and a little text
  Tiny m = tiny(false, "tr_cli_m", 290);
  fs::copy_file(fixture, m.dir + "/tokenizer.json");
  std::string text;
  for (int i = 0; i < 60; i++) text += "the cat sat on the mat and the dog ran. ";
  write_file_atomic(m.dir + "/data.txt", text.data(), text.size());
  std::string out = m.dir + "/qat", err, so;
  int rc = test::run_lmpress(fmt::format("train qat --model {} --data {}/data.txt --format text --steps 6 --batch 2 "
                                         "--seqlen 16 --bits 4 --group 0 --json -o {}", m.dir, m.dir, out), &so, &err);
  ASSERT_EQ(rc, 0) << err;
  auto j = nlohmann::json::parse(so);
  EXPECT_EQ(j["steps"], 6);
  auto q = load_model(out);
  EXPECT_EQ(q->blocks[0].lin[0].w->format(), "int4_row_asym");
  EXPECT_NE(err.find("train step 6/6"), std::string::npos) << err;
  // divergence through the CLI: exit 2, one line naming the checkpoint
  rc = test::run_lmpress(fmt::format("train qat --model {} --data {}/data.txt --format text --steps 6 --batch 2 "
                                     "--seqlen 16 --group 0 --lr 1e30 --clip 0 --warmup 0 --ckpt-every 1 -o {}/nan",
                                     m.dir, m.dir, m.dir), nullptr, &err);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(err.find("diverged"), std::string::npos) << err;
  EXPECT_TRUE(fs::exists(m.dir + "/nan.ckpt.safetensors"));
}

// Issue 13 training-based methods: QuantGPT's token contrastive loss (finite differences), L4Q (gradients of
// the quantized merge; the exported QIntMatrix computes exactly fq(W0 + sBA)), LoRAPrune (its LoRA-gradient
// importance against the exact merged-weight gradient of an independent dense model; the shrunk model equals
// the masked one), TF-LLMD (truncation picks the right blocks and the student equals the teacher without them).
#include <cmath>
#include <filesystem>
#include <functional>
#include <random>

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/half.h"
#include "core/mmap_file.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"
#include "prune/loraprune.h"
#include "testutil.h"
#include "train_testutil.h"
#include "train/fakequant.h"
#include "train/l4q.h"
#include "train/losses.h"
#include "train/tfllmd.h"
#include "train/tmodel.h"

namespace fs = std::filesystem;
using namespace lmp;
using namespace lmp::train;

namespace {

using test::rnd;

double rel(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) num = std::max(num, std::abs(a[i] - b[i])), den = std::max(den, std::abs(b[i]));
  return num / std::max(den, 1e-300);
}

std::unique_ptr<Model> tiny(const std::string& tag, std::string* dir = nullptr) {
  std::string d = test::temp_dir(tag);
  test::TinySpec s;
  s.hidden = 16, s.layers = 3, s.heads = 4, s.kv_heads = 2, s.ffn = 24, s.vocab = 64, s.tied = false;
  test::write_tiny_model(d, s);
  if (dir) *dir = d;
  return load_model(d);
}

using test::ids_for;
using test::model_loss;

std::vector<float> infer_logits(const Model& m, const std::vector<int>& ids) {
  Forward fw(m);
  KVCache cache(m.cfg, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.cfg.vocab));
  fw.tokens(ids.data(), int(ids.size()), cache, out.data());
  return out;
}

void set_lora_b(TrainModel<float>& tm, uint32_t seed, float scale) {
  for (auto& p : tm.params)
    if (p.name.ends_with("lora_B")) {
      auto v = test::random_vector(p.size(), seed++, scale);
      p.w.assign(v.begin(), v.end());
    }
}

// A LoRA model on every projection with non-zero B and the gradients of a CE loss over ids (2 × 8).
std::unique_ptr<TrainModel<float>> lora_with_grads(const Model& m, int rank, uint32_t seed, const std::vector<int>& ids) {
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = rank;
  auto tm = std::make_unique<TrainModel<float>>(m, s);
  set_lora_b(*tm, seed, 0.1f);
  model_loss(*tm, ids, 2, 8, true);
  return tm;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// QuantGPT token-level contrastive distillation

TEST(QuantGptContrastive, GradientMatchesFiniteDifferences) {
  const int N = 7, C = 5;
  auto hs = rnd(N * C, 1), ht = rnd(N * C, 2);
  for (double tau : {0.1, 1.0}) {
    std::vector<double> d(N * C, 0.0);
    token_contrastive_loss(d.data(), hs.data(), ht.data(), N, C, tau);
    std::vector<double> num;
    for (size_t i = 0; i < hs.size(); i++) {
      const double h = 1e-6, x0 = hs[i];
      hs[i] = x0 + h;
      const double fp = token_contrastive_loss<double>(nullptr, hs.data(), ht.data(), N, C, tau);
      hs[i] = x0 - h;
      const double fm = token_contrastive_loss<double>(nullptr, hs.data(), ht.data(), N, C, tau);
      hs[i] = x0;
      num.push_back((fp - fm) / (2 * h));
    }
    EXPECT_LE(rel(d, num), 1e-6) << "tau " << tau;
  }
}

TEST(QuantGptContrastive, DefinitionOnSmallInput) {
  // Independent evaluation of −1/N Σ log softmax_j(cos(hs_i, ht_j)/τ)[i]; scale-invariant in hs; minimal when
  // every student state points at its own teacher state.
  const int N = 4, C = 3;
  const double tau = 0.5;
  auto hs = rnd(N * C, 3), ht = rnd(N * C, 4);
  double ref = 0;
  for (int i = 0; i < N; i++) {
    std::vector<double> s(N);
    for (int j = 0; j < N; j++) {
      double dot = 0, a = 0, b = 0;
      for (int c = 0; c < C; c++)
        dot += hs[i * C + c] * ht[j * C + c], a += hs[i * C + c] * hs[i * C + c], b += ht[j * C + c] * ht[j * C + c];
      s[size_t(j)] = dot / std::sqrt(a * b) / tau;
    }
    double z = 0;
    for (double v : s) z += std::exp(v);
    ref += -(s[size_t(i)] - std::log(z)) / N;
  }
  EXPECT_NEAR(token_contrastive_loss<double>(nullptr, hs.data(), ht.data(), N, C, tau), ref, 1e-12);
  std::vector<double> scaled = hs;
  for (auto& v : scaled) v *= 3.7;
  EXPECT_NEAR(token_contrastive_loss<double>(nullptr, scaled.data(), ht.data(), N, C, tau), ref, 1e-12);
  EXPECT_LT(token_contrastive_loss<double>(nullptr, ht.data(), ht.data(), N, C, tau), ref);
}

// ---------------------------------------------------------------------------------------------------
// L4Q

TEST(L4q, AdapterChainMatchesFiniteDifferences) {
  // Analytic A/B gradients = (α/r)·(dWm·Aᵀ, Bᵀ·dWm) with dWm the STE gradient: check the chain against central
  // differences of L(Wm) = Σ R ⊙ Wm (the STE treats fq as identity inside the range, so this is its definition).
  const int O = 5, I = 6, r = 2;
  const double s = 1.5;
  auto W0 = rnd(O * I, 1), A = rnd(r * I, 2, 0.3), B = rnd(O * r, 3, 0.3), R = rnd(O * I, 4);
  std::vector<double> dA(r * I, 0), dB(O * r, 0);
  l4q_adapter_backward(dA.data(), dB.data(), R.data(), A.data(), B.data(), O, I, r, s);
  auto f = [&] {
    std::vector<double> Wm(O * I);
    l4q_merge(Wm.data(), W0.data(), A.data(), B.data(), O, I, r, s);
    double v = 0;
    for (size_t k = 0; k < Wm.size(); k++) v += R[k] * Wm[k];
    return v;
  };
  auto numeric = [&](std::vector<double>& x) {
    std::vector<double> g;
    for (auto& v : x) {
      const double x0 = v;
      v = x0 + 1e-6;
      const double fp = f();
      v = x0 - 1e-6;
      const double fm = f();
      v = x0;
      g.push_back((fp - fm) / 2e-6);
    }
    return g;
  };
  EXPECT_LE(rel(dA, numeric(A)), 1e-7);
  EXPECT_LE(rel(dB, numeric(B)), 1e-7);
}

namespace {
TrainSetup l4q_setup(int rank, QuantGrid grid) {
  TrainSetup s;
  s.mode = Mode::Lora;
  s.l4q = true;
  s.rank = rank;
  s.grid = grid;
  return s;
}
}  // namespace

TEST(L4q, ExportedQIntMatrixComputesExactlyTheTrainedQuantizedMerge) {
  auto m = tiny("l4q_exp");
  TrainSetup s = l4q_setup(3, {3, false, 0});
  TrainModel<float> tm(*m, s);
  set_lora_b(tm, 7, 0.05f);
  for (auto& p : tm.params)  // f16-representable learned scales (the stored format keeps f16 scales)
    if (p.positive)
      for (auto& v : p.w) v = f16_to_f32(f32_to_f16(v * 1.1f));
  int l4q = 0;
  for (auto& L : std::vector<const TLinear<float>*>{&tm.linear(0, 0), &tm.linear(2, 6)}) l4q += L->l4q;
  EXPECT_EQ(l4q, 2);
  const int T = 9;
  auto ids = ids_for(T, m->cfg.vocab, 5);
  tm.forward(ids.data(), 1, T);
  auto qm = tm.to_model(*m);
  for (int l = 0; l < 3; l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const auto& L = tm.linear(l, k);
      ASSERT_EQ(qm->blocks[size_t(l)].lin[size_t(k)].w->format(), "int3_row_asym");
      // fq(W0 + sBA) computed here from the parameters, not through the model's own code path
      std::vector<float> Wm(size_t(L.O) * L.I), ref(Wm.size()), got(Wm.size());
      const auto& W0 = tm.params[size_t(L.W)].w;
      const auto& A = tm.params[size_t(L.A)].w;
      const auto& B = tm.params[size_t(L.B)].w;
      for (int o = 0; o < L.O; o++)
        for (int i = 0; i < L.I; i++) {
          double v = 0;
          for (int j = 0; j < L.rank; j++) v += double(B[size_t(o) * L.rank + j]) * A[size_t(j) * L.I + i];
          Wm[size_t(o) * L.I + i] = float(W0[size_t(o) * L.I + i] + float(L.lora_scale * v));
        }
      fakequant_forward(ref.data(), Wm.data(), tm.params[size_t(L.scale)].w.data(), L.zero.data(), L.O, L.I, L.grid);
      qm->blocks[size_t(l)].lin[size_t(k)].w->dequantize(got.data());
      EXPECT_LE(test::max_abs_diff(got.data(), ref.data(), ref.size()), 1e-6) << L.name;
    }
  // the stored model's matmuls give the training forward's logits
  // the stored model, run by the training engine, gives the L4Q forward's logits exactly; the inference engine
  // agrees up to its int8 activation quantization (kernels/qint.h)
  TrainSetup ds;
  TrainModel<float> re(*qm, ds);
  re.forward(ids.data(), 1, T);
  EXPECT_EQ(test::max_abs_diff(re.logits().data(), tm.logits().data(), re.logits().size()), 0.0);
  auto lg = infer_logits(*qm, ids);
  EXPECT_LE(test::max_abs_diff(lg.data(), tm.logits().data(), lg.size()), 0.1);
}

TEST(L4q, SteGradientsMatchTheFloatMergeAtEightBits) {
  auto m = tiny("l4q_grad");
  TrainSetup s = l4q_setup(2, {8, false, 0});  // fine grid: Ŵ ≈ Wm, so L4Q's gradients ≈ plain LoRA's
  s.targets = ".*(q_proj|down_proj)";
  TrainModel<double> tm(*m, s);
  for (auto& p : tm.params) {
    if (p.name.ends_with("lora_B")) p.w = rnd(p.size(), 9, 0.01);
    if (p.positive)
      for (auto& v : p.w) v *= 1.2;  // no clipping of the merge: the STE passes every entry
  }
  auto ids = ids_for(10, m->cfg.vocab, 4);
  model_loss(tm, ids, 2, 5, true);
  // A and B: the STE gradient is the gradient of L through the (float) merge wherever the quantized weight
  // would not change; compare with a model that uses the unquantized merge (plain LoRA) — equal up to the
  // difference between Ŵ and Wm in the forward, which an 8-bit grid makes small.
  s.l4q = false;
  TrainModel<double> ref(*m, s);
  auto find = [&](const std::string& name) -> Param<double>& {
    for (auto& p : tm.params)
      if (p.name == name) return p;
    throw std::runtime_error("no " + name);
  };
  for (auto& p : ref.params)
    if (p.trainable) p.w = find(p.name).w;
  model_loss(ref, ids, 2, 5, true);
  int n = 0;
  for (auto& p : ref.params)
    if (p.trainable) {
      EXPECT_LE(rel(find(p.name).g, p.g), 0.05) << p.name;
      n++;
    }
  EXPECT_EQ(n, 3 * 2 * 2);
  // scales learn (LSQ) and their gradient is non-zero
  double sg = 0;
  for (auto& p : tm.params)
    if (p.positive)
      for (double g : p.g) sg += std::abs(g);
  EXPECT_GT(sg, 0);
}

// ---------------------------------------------------------------------------------------------------
// LoRAPrune

namespace {

// Per layer, the grouped importance computed independently from the exact merged-weight gradient G = ∇W' of a
// dense copy of the merged model: per weight |W' ⊙ G| (exact) or |W' ⊙ s²(G·AᵀA + B·Bᵀ·G)| (what LoRA's
// gradients give, by ∇B = s·G·Aᵀ and ∇A = s·Bᵀ·G), summed per KV group / MLP channel over its size.
std::vector<std::vector<double>> independent_importance(const TrainModel<float>& tm, const TrainModel<float>& dense,
                                                        bool exact) {
  const auto& c = tm.cfg;
  const int hs = c.head_dim, C = c.hidden;
  std::vector<std::vector<double>> out;
  for (int l = 0; l < tm.n_layers(); l++) {
    const int g = c.heads(l) / c.kv_heads(l);
    std::vector<std::vector<double>> imp(kLinearsPerBlock);
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const auto& L = tm.linear(l, k);
      const auto& G = dense.params[size_t(dense.linear(l, k).W)].g;
      const auto& Wp = dense.params[size_t(dense.linear(l, k).W)].w;
      const auto& A = tm.params[size_t(L.A)].w;
      const auto& B = tm.params[size_t(L.B)].w;
      const int O = L.O, I = L.I, r = L.rank;
      const double sc = L.lora_scale;
      std::vector<double> AtA(size_t(I) * I, 0), BBt(size_t(O) * O, 0);
      for (int i = 0; i < I; i++)
        for (int i2 = 0; i2 < I; i2++)
          for (int j = 0; j < r; j++) AtA[size_t(i) * I + i2] += double(A[size_t(j) * I + i]) * A[size_t(j) * I + i2];
      for (int o = 0; o < O; o++)
        for (int o2 = 0; o2 < O; o2++)
          for (int j = 0; j < r; j++) BBt[size_t(o) * O + o2] += double(B[size_t(o) * r + j]) * B[size_t(o2) * r + j];
      imp[size_t(k)].resize(size_t(O) * I);
      for (int o = 0; o < O; o++)
        for (int i = 0; i < I; i++) {
          double e = G[size_t(o) * I + i];
          if (!exact) {
            e = 0;
            for (int i2 = 0; i2 < I; i2++) e += double(G[size_t(o) * I + i2]) * AtA[size_t(i2) * I + i];
            for (int o2 = 0; o2 < O; o2++) e += BBt[size_t(o) * O + o2] * G[size_t(o2) * I + i];
            e *= sc * sc;
          }
          imp[size_t(k)][size_t(o) * I + i] = std::abs(Wp[size_t(o) * I + i] * e);
        }
    }
    auto sum = [&](int k, int r0, int r1, int c0, int c1) {
      const int I = tm.linear(l, k).I;
      double v = 0;
      for (int o = r0; o < r1; o++)
        for (int i = c0; i < c1; i++) v += imp[size_t(k)][size_t(o) * I + i];
      return v;
    };
    std::vector<double> want;
    const int Oo = tm.linear(l, 3).O;
    for (int kg = 0; kg < c.kv_heads(l); kg++)
      want.push_back((sum(0, kg * g * hs, (kg + 1) * g * hs, 0, C) + sum(1, kg * hs, (kg + 1) * hs, 0, C) +
                      sum(2, kg * hs, (kg + 1) * hs, 0, C) + sum(3, 0, Oo, kg * g * hs, (kg + 1) * g * hs)) /
                     double(int64_t(hs) * C * (2 * g + 2)));
    for (int j = 0; j < c.ffn(l); j++)
      want.push_back((sum(4, j, j + 1, 0, C) + sum(5, j, j + 1, 0, C) + sum(6, 0, C, j, j + 1)) / (3.0 * C));
    out.push_back(std::move(want));
  }
  return out;
}

std::unique_ptr<TrainModel<float>> dense_grads(const TrainModel<float>& tm, const Model& m, const std::vector<int>& ids) {
  auto merged = tm.to_model(m);  // TrainModel copies what it needs from the Model
  auto d = std::make_unique<TrainModel<float>>(*merged, TrainSetup{});
  model_loss(*d, ids, 2, 8, true);
  return d;
}

}  // namespace

TEST(LoraPrune, ImportanceEqualsMergedWeightGradientThroughAdapters) {
  auto m = tiny("lp_imp");
  auto ids = ids_for(16, m->cfg.vocab, 2);
  auto tm = lora_with_grads(*m, 3, 11, ids);
  LoraPruner pr(*tm, LoraPruneOptions{});
  auto gi = pr.group_importance();
  auto want = independent_importance(*tm, *dense_grads(*tm, *m, ids), false);
  for (int l = 0; l < 3; l++) {
    EXPECT_LE(rel(gi[size_t(l)], want[size_t(l)]), 2e-3) << "layer " << l;
    EXPECT_GT(*std::max_element(want[size_t(l)].begin(), want[size_t(l)].end()), 0);
  }
}

TEST(LoraPrune, ImportanceIsExactWeightTimesGradientWhenAdapterPathIsExact) {
  // Rank ≥ every input width, A = I/s (so s²·AᵀA = I) and B = 0 (W' = W): the LoRA estimate must equal the exact
  // first-order importance |W ⊙ ∇W|, grouped.
  auto m = tiny("lp_exact");
  TrainSetup s;
  s.mode = Mode::Lora;
  s.rank = 24;  // the widest input (down_proj: ffn 24)
  TrainModel<float> tm(*m, s);
  for (int l = 0; l < 3; l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const auto& L = tm.linear(l, k);
      auto& A = tm.params[size_t(L.A)].w;
      std::fill(A.begin(), A.end(), 0.0f);
      for (int i = 0; i < L.I; i++) A[size_t(i) * L.I + i] = float(1.0 / L.lora_scale);
    }
  auto ids = ids_for(16, m->cfg.vocab, 5);
  model_loss(tm, ids, 2, 8, true);
  LoraPruner pr(tm, LoraPruneOptions{});
  auto gi = pr.group_importance();
  auto want = independent_importance(tm, *dense_grads(tm, *m, ids), true);
  for (int l = 0; l < 3; l++) EXPECT_LE(rel(gi[size_t(l)], want[size_t(l)]), 2e-3) << "layer " << l;
}

TEST(LoraPrune, ShrunkModelEqualsMaskedModelAndReloads) {
  std::string dir;
  auto m = tiny("lp_shrink", &dir);
  auto tmp = lora_with_grads(*m, 2, 3, ids_for(16, m->cfg.vocab, 8));
  TrainModel<float>& tm = *tmp;
  LoraPruneOptions o;
  o.sparsity = 0.3;
  LoraPruner pr(tm, o);
  pr.after_backward(0);
  pr.prune_to(int64_t(0.3 * double(pr.prunable_params())));
  pr.apply_masks();
  EXPECT_GT(pr.removed_params(), 0.2 * double(pr.prunable_params()));
  const int T = 10;
  auto ev = ids_for(T, m->cfg.vocab, 9);
  tm.forward(ev.data(), 1, T);
  auto small = pr.finish(*m);
  EXPECT_LT(small->n_params(), m->n_params() - pr.removed_params() + 1);
  auto lg = infer_logits(*small, ev);
  EXPECT_LE(test::max_abs_diff(lg.data(), tm.logits().data(), lg.size()), 1e-4);
  save_model(*small, dir + "/lp_out");
  auto back = load_model(dir + "/lp_out");
  auto lg2 = infer_logits(*back, ev);
  EXPECT_LE(test::max_abs_diff(lg2.data(), lg.data(), lg.size()), 1e-6);
  // the plan keeps at least one KV group and one channel per layer and drops something structured
  FlapPlan p = pr.plan();
  int dropped = 0;
  for (int l = 0; l < 3; l++) {
    EXPECT_GE(p.keep_groups[size_t(l)].size(), 1u);
    EXPECT_GE(p.keep_channels[size_t(l)].size(), 1u);
    dropped += int(2 - p.keep_groups[size_t(l)].size()) + int(24 - p.keep_channels[size_t(l)].size());
  }
  EXPECT_GT(dropped, 0);
}

// ---------------------------------------------------------------------------------------------------
// TF-LLMD

TEST(TfLlmd, TruncationChoosesBlocksAndStudentIsTeacherWithoutThem) {
  EXPECT_EQ(truncation_drop_layers(5, 3, StudentInit::TruncateAlternate), (std::vector<int>{1, 3}));
  EXPECT_EQ(truncation_drop_layers(5, 3, StudentInit::TruncateFirst), (std::vector<int>{3, 4}));
  EXPECT_EQ(truncation_drop_layers(6, 3, StudentInit::TruncateAlternate), (std::vector<int>{1, 2, 4}));
  EXPECT_EQ(truncation_drop_layers(4, 4, StudentInit::TruncateAlternate), (std::vector<int>{}));
  EXPECT_THROW(truncation_drop_layers(4, 0, StudentInit::TruncateFirst), Error);
  EXPECT_THROW(parse_student_init("middle"), Error);
  auto m = tiny("tfllmd");
  TrainSetup s;
  s.drop_layers = truncation_drop_layers(3, 2, StudentInit::TruncateAlternate);  // keeps 0, 2
  TrainModel<float> st(*m, s);
  EXPECT_EQ(st.n_layers(), 2);
  const int T = 7;
  auto ids = ids_for(T, m->cfg.vocab, 1);
  st.forward(ids.data(), 1, T);
  auto ref = load_model(m->dir);  // the teacher with block 1 removed, through the inference engine
  ref->blocks.erase(ref->blocks.begin() + 1);
  ref->cfg.n_layers = 2;
  auto lg = infer_logits(*ref, ids);
  EXPECT_LE(test::max_abs_diff(lg.data(), st.logits().data(), lg.size()), 1e-4);
  random_reinit(st, 3);
  for (auto& p : st.params) {
    if (p.name.find("norm") != std::string::npos) {
      for (float v : p.w) EXPECT_EQ(v, 1.0f);
    } else {
      double ss = 0;
      for (float v : p.w) ss += double(v) * v;
      EXPECT_NEAR(std::sqrt(ss / double(p.size())), 0.02, 0.006) << p.name;
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// CLI

TEST(Train13Cli, L4qLoraPruneAndTruncatedDistillRun) {
  std::string dir;
  auto tm = tiny("t13_cli", &dir);
  std::string d2 = test::temp_dir("t13_cli_m");
  test::TinySpec s;
  s.hidden = 16, s.layers = 3, s.heads = 4, s.kv_heads = 2, s.ffn = 24, s.vocab = 290, s.tied = false;
  test::write_tiny_model(d2, s);
  fs::copy_file(std::string(LMP_SOURCE_DIR) + "/tests/data/tokenizer/bytelevel/tokenizer.json", d2 + "/tokenizer.json");
  std::string text;
  for (int i = 0; i < 60; i++) text += "the cat sat on the mat and the dog ran. ";
  write_file_atomic(d2 + "/data.txt", text.data(), text.size());
  const std::string common = fmt::format("--model {0} --data {0}/data.txt --format text --steps 6 --batch 2 --seqlen 16 --json", d2);
  std::string so, err;
  ASSERT_EQ(test::run_lmpress("train l4q " + common + " --bits 4 --group 0 --rank 2 -o " + d2 + "/l4q", &so, &err), 0) << err;
  EXPECT_EQ(load_model(d2 + "/l4q")->blocks[0].lin[0].w->format(), "int4_row_asym");
  ASSERT_EQ(test::run_lmpress("train loraprune " + common + " --sparsity 0.3 --rank 2 -o " + d2 + "/lp", &so, &err), 0)
      << err;
  auto lp = load_model(d2 + "/lp");
  auto base = load_model(d2);
  EXPECT_LT(lp->n_params(), base->n_params());
  EXPECT_EQ(nlohmann::json::parse(so)["params"].get<int64_t>(), lp->n_params());
  ASSERT_EQ(test::run_lmpress("train distill " + common + " --init truncate-alternate --student-layers 2 --loss fkl -o " +
                                  d2 + "/tf", &so, &err), 0) << err;
  EXPECT_EQ(load_model(d2 + "/tf")->cfg.n_layers, 2);
  ASSERT_EQ(test::run_lmpress("train qat " + common + " --bits 4 --group 0 --loss fkl --contrastive 0.5 --tau 0.2 -o " +
                                  d2 + "/qc", &so, &err), 0) << err;
  EXPECT_NE(test::run_lmpress("train distill " + common + " --init sideways -o " + d2 + "/bad", nullptr, &err), 0);
  EXPECT_NE(err.find("--init"), std::string::npos) << err;
}

// Issue 13 pruning methods: E-Sparse (entropy metric, channel shuffle, folded permutation), against
// independent computations; end to end on a tiny model through a recipe, stored and reloaded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <tuple>

#include "compress/recipe.h"
#include "core/error.h"
#include "kernels/permuted.h"
#include "kernels/sparse.h"
#include "model/forward.h"
#include "model/model.h"
#include "kernels/dense.h"
#include "prune/esparse.h"
#include "prune/gum.h"
#include "prune/mask.h"
#include "prune/samsp.h"
#include "testutil.h"

using namespace lmp;

namespace {

// Brute force: the lowest pruned mass over all ways to split the 8 columns of S into two groups of 4 (2:4).
double best_split_mass(const float* S, int64_t rows) {
  double best = 1e300;
  std::vector<int32_t> p(8);
  for (int mask = 0; mask < 256; mask++) {
    if (__builtin_popcount(unsigned(mask)) != 4) continue;
    int a = 0, b = 4;
    for (int c = 0; c < 8; c++) p[size_t((mask >> c) & 1 ? a++ : b++)] = c;
    best = std::min(best, nm_pruned_mass(S, rows, 8, p, {2, 4}));
  }
  return best;
}

}  // namespace

// H = −Σ p ln p of known distributions: 4 equally filled bins → ln 4; shares ½, ¼, ¼ → 1.5 ln 2; a constant → 0.
TEST(Esparse, EntropyOfKnownDistributions) {
  const int bins = 4;  // range 1: bins [−1, −½), [−½, 0), [0, ½), [½, 1]
  ChannelHistograms h({1.0f, 1.0f, 2.0f}, bins);
  const float vals0[4] = {-0.75f, -0.25f, 0.25f, 0.75f};
  const float vals1[4] = {-0.9f, -0.6f, 0.1f, 0.6f};  // bins 0, 0, 2, 3
  for (int rep = 0; rep < 25; rep++)
    for (int k = 0; k < 4; k++) {
      const float x[3] = {vals0[k], vals1[k], 0.7f};
      h.add(x, 1);
    }
  std::vector<double> H = h.entropy();
  EXPECT_NEAR(H[0], std::log(4.0), 1e-12);
  EXPECT_NEAR(H[1], -(0.5 * std::log(0.5) + 2 * 0.25 * std::log(0.25)), 1e-12);
  EXPECT_NEAR(H[2], 0.0, 1e-12);
  const int64_t c[3] = {1, 0, 3};
  EXPECT_NEAR(histogram_entropy(c, 3), -(0.25 * std::log(0.25) + 0.75 * std::log(0.75)), 1e-12);
}

TEST(Esparse, ScoresAreWandaWithEntropy) {
  const float W[4] = {1.0f, -2.0f, 0.5f, -0.25f};
  std::vector<float> S = esparse_scores(W, 2, 2, {0.5, 2.0}, {3.0, 1.0}, 0.1);
  EXPECT_FLOAT_EQ(S[0], 1.0f * (0.5f + 0.3f));
  EXPECT_FLOAT_EQ(S[1], 2.0f * (2.0f + 0.1f));
  EXPECT_FLOAT_EQ(S[3], 0.25f * 2.1f);
}

// Outlier channels 0..3 crowd one 2:4 group: without a shuffle two of them are pruned in every row; the shuffle
// spreads them (one optimal split, found by brute force) and never prunes more mass than no shuffle.
TEST(Esparse, ShuffleSpreadsOutliersAndNeverPrunesMore) {
  const int64_t rows = 3, cols = 8;
  std::vector<float> S(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) S[size_t(r * cols + c)] = c < 4 ? 10.0f - float(c) + float(r) : 1.0f + 0.1f * float(c);
  std::vector<int32_t> id(8);
  std::iota(id.begin(), id.end(), 0);
  const double none = nm_pruned_mass(S.data(), rows, cols, id, {2, 4});
  // Independent: group {0..3} prunes its two lowest (8+r, 7+r), group {4..7} its two lowest (1.4, 1.5).
  double expect = 0;
  for (int r = 0; r < 3; r++) expect += (8 + r) + (7 + r) + 1.4 + 1.5;
  EXPECT_NEAR(none, expect, 1e-4);
  for (ShuffleOptions o : {ShuffleOptions{true, 0, 1}, ShuffleOptions{false, 8, 2}, ShuffleOptions{true, 8, 2}}) {
    std::vector<int32_t> p = esparse_shuffle(S.data(), rows, cols, {2, 4}, o);
    EXPECT_NEAR(nm_pruned_mass(S.data(), rows, cols, p, {2, 4}), best_split_mass(S.data(), rows), 1e-4);
    EXPECT_LT(nm_pruned_mass(S.data(), rows, cols, p, {2, 4}), 0.35 * none);  // 18.6 vs 59.7
  }
  // Random scores with heavy-tailed channels, several widths: never above no shuffle.
  std::mt19937 rng(3);
  std::lognormal_distribution<float> ln(0, 1.5);
  for (int64_t w : {16, 64, 96}) {
    std::vector<float> R(size_t(20 * w));
    std::vector<float> chan(static_cast<size_t>(w));
    for (float& c : chan) c = ln(rng);
    for (int64_t i = 0; i < 20 * w; i++) R[size_t(i)] = ln(rng) * chan[size_t(i % w)];
    std::vector<int32_t> idw(static_cast<size_t>(w));
    std::iota(idw.begin(), idw.end(), 0);
    for (NMPattern nm : {NMPattern{2, 4}, NMPattern{4, 8}}) {
      const double base = nm_pruned_mass(R.data(), 20, w, idw, nm);
      std::vector<int32_t> p = esparse_shuffle(R.data(), 20, w, nm, {true, 32, 2});
      std::vector<int32_t> sorted = p;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(sorted, idw);
      EXPECT_LE(nm_pruned_mass(R.data(), 20, w, p, nm), base);
    }
  }
}

// The N:M matrix over permuted columns + its permutation computes X·Wᵀ of the unpermuted pruned W; save/load
// keeps it; dequantize puts every value back at its input channel.
TEST(Esparse, FoldedPermutationEqualsUnpermutedComputation) {
  const int64_t rows = 24, cols = 64, n = 5;
  std::vector<float> W = test::random_vector(size_t(rows * cols), 7);
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(4));
  std::vector<float> Wp = permute_columns(W.data(), rows, cols, perm);
  for (int64_t r = 0; r < rows; r++)  // 2:4 over permuted positions: keep positions 0 and 3 of each group
    for (int64_t j = 0; j < cols; j++)
      if (j % 4 == 1 || j % 4 == 2) Wp[size_t(r * cols + j)] = 0;
  // The same pruning in original channel order, written independently.
  std::vector<float> Wo(size_t(rows * cols), 0.0f);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++)
      if (j % 4 == 0 || j % 4 == 3) Wo[size_t(r * cols + perm[size_t(j)])] = W[size_t(r * cols + perm[size_t(j)])];
  PermutedInputMatrix pm(SparseNM::from_dense(rows, cols, Wp.data(), 2, 4, SparseValues::F32), perm);
  std::vector<float> X = test::random_vector(size_t(n * cols), 8), Y(size_t(n * rows)), Y1(static_cast<size_t>(rows));
  pm.matmul(X.data(), n, Y.data());
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++) {
      double ref = 0;
      for (int64_t c = 0; c < cols; c++) ref += double(X[size_t(t * cols + c)]) * Wo[size_t(r * cols + c)];
      EXPECT_NEAR(Y[size_t(t * rows + r)], ref, 1e-4);
    }
  pm.matmul(X.data(), 1, Y1.data());  // decode path (n = 1, AVX-512 GEMV)
  for (int64_t r = 0; r < rows; r++) EXPECT_NEAR(Y1[size_t(r)], Y[size_t(r)], 1e-4);
  EXPECT_EQ(pm.dense(), Wo);
  EXPECT_THROW(PermutedInputMatrix(SparseNM::from_dense(rows, cols, Wp.data(), 2, 4, SparseValues::F32),
                                   std::vector<int32_t>(size_t(cols), 0)),
               Error);
}

TEST(Esparse, TinyModelRecipeStoredAndReloaded) {
  std::string dir = test::temp_dir("esparse_tiny");
  test::TinySpec ts;
  test::write_tiny_model(dir + "/m", ts);
  auto m = load_model(dir + "/m");
  auto mod = make_modifier({{"modifier", "esparse"}, {"nm", "2:4"}, {"block", 16}});
  run_sequential(*m, test::random_tokens(4, 32, ts.vocab, 1), {mod.get()}, PipelineOptions{.progress = false});
  int permuted = 0;
  for (const auto& b : m->blocks)
    for (const auto& l : b.lin) {
      const WeightMatrix* w = l.w.get();
      if (auto* p = dynamic_cast<const PermutedInputMatrix*>(w)) permuted++, w = &p->inner();
      EXPECT_TRUE(w->format() == "nm2_4_f32") << w->format();
      std::vector<float> d = l.w->dense();
      EXPECT_EQ(std::count(d.begin(), d.end(), 0.0f), int64_t(d.size()) / 2);
    }
  EXPECT_GT(permuted, 0);
  const std::vector<int> ids = test::random_tokens(1, 20, ts.vocab, 9)[0];
  std::vector<float> a = test::prefill_logits(*m, ids);
  save_model(*m, dir + "/out");
  auto back = load_model(dir + "/out");
  EXPECT_EQ(back->blocks[0].lin[0].w->format(), m->blocks[0].lin[0].w->format());
  EXPECT_EQ(test::prefill_logits(*back, ids), a);
  EXPECT_THROW(make_modifier({{"modifier", "esparse"}, {"sparsity", 0.5}}), Error);
}

// ---------------------------------------------------------------------------------------------------
// SAMSP

namespace {

// [(H + λ·mean diag·I)⁻¹]_jj by Gauss–Jordan elimination in double (independent of the Cholesky route).
std::vector<double> inverse_diag(std::vector<double> H, int64_t n, double damp) {
  double mean = 0;
  for (int64_t i = 0; i < n; i++) mean += H[size_t(i * n + i)] / double(n);
  for (int64_t i = 0; i < n; i++) H[size_t(i * n + i)] += damp * mean;
  std::vector<double> I(size_t(n * n), 0.0);
  for (int64_t i = 0; i < n; i++) I[size_t(i * n + i)] = 1;
  for (int64_t c = 0; c < n; c++) {
    const double p = H[size_t(c * n + c)];
    for (int64_t j = 0; j < n; j++) H[size_t(c * n + j)] /= p, I[size_t(c * n + j)] /= p;
    for (int64_t r = 0; r < n; r++)
      if (r != c) {
        const double f = H[size_t(r * n + c)];
        for (int64_t j = 0; j < n; j++) H[size_t(r * n + j)] -= f * H[size_t(c * n + j)], I[size_t(r * n + j)] -= f * I[size_t(c * n + j)];
      }
  }
  std::vector<double> d(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) d[size_t(i)] = I[size_t(i * n + i)];
  return d;
}

}  // namespace

TEST(Samsp, SaliencyIsObsErrorWithInverseHessianDiagonal) {
  const int64_t rows = 6, cols = 12, n = 40;
  std::vector<float> W = test::random_vector(size_t(rows * cols), 1), X = test::random_vector(size_t(n * cols), 2);
  std::vector<double> H(size_t(cols * cols), 0.0);
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = 0; j < cols; j++) H[size_t(i * cols + j)] += 2.0 / n * X[size_t(t * cols + i)] * X[size_t(t * cols + j)];
  std::vector<float> s = obs_saliency(W.data(), rows, cols, H, 0.01, "test");
  std::vector<double> d = inverse_diag(H, cols, 0.01);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) {
      const double w = W[size_t(r * cols + j)];
      EXPECT_NEAR(s[size_t(r * cols + j)], w * w / d[size_t(j)], 1e-4 * (1 + w * w / d[size_t(j)]));
    }
}

// Three matrices, the same weights, sensitivities ×1, ×4, ×16 (and two sizes): the global count is met exactly,
// sparsity falls as sensitivity rises, every matrix stays within target ± Δ, and no matrix prunes a weight more
// salient than one another matrix could still have pruned (the optimality condition of the threshold rule).
TEST(Samsp, AllocationMeetsTargetExactlyAndFollowsSensitivity) {
  std::vector<float> base = test::random_vector(3000, 5);
  for (float& v : base) v = v * v;
  std::vector<std::vector<float>> sal;
  for (float f : {1.0f, 4.0f, 16.0f}) {
    sal.push_back(base);
    for (float& v : sal.back()) v *= f;
  }
  sal.push_back(std::vector<float>(base.begin(), base.begin() + 1001));  // another size, sensitivity ×1
  int64_t total = 0;
  for (const auto& s : sal) total += int64_t(s.size());
  for (double p : {0.5, 0.6}) {
    std::vector<int64_t> z = samsp_allocate(sal, p, 0.15);
    EXPECT_EQ(std::accumulate(z.begin(), z.end(), int64_t(0)), prune_count(total, p));
    EXPECT_GT(z[0], z[1]);
    EXPECT_GT(z[1], z[2]);
    double max_pruned = 0, min_kept = 1e30;
    for (size_t l = 0; l < sal.size(); l++) {
      const double n = double(sal[l].size()), sp = double(z[l]) / n;
      EXPECT_GE(sp, p - 0.15 - 1.0 / n);
      EXPECT_LE(sp, p + 0.15);
      std::vector<float> s = sal[l];
      std::sort(s.begin(), s.end());
      if (z[l] > prune_count(int64_t(n), p - 0.15)) max_pruned = std::max(max_pruned, double(s[size_t(z[l] - 1)]));
      if (z[l] < prune_count(int64_t(n), p + 0.15)) min_kept = std::min(min_kept, double(s[size_t(z[l])]));
    }
    EXPECT_LE(max_pruned, min_kept);
  }
  EXPECT_THROW(samsp_allocate(sal, 0.5, -0.1), Error);
}

// End to end: SparseGPT at the allocated counts; the whole model's zeros equal ⌊p · Σ n_l⌋ exactly.
TEST(Samsp, TinyModelCountsZerosExactly) {
  std::string dir = test::temp_dir("samsp_tiny");
  test::TinySpec ts;
  test::write_tiny_model(dir + "/m", ts);
  for (const char* mask : {"row", "block"}) {
  SCOPED_TRACE(mask);
  auto m = load_model(dir + "/m");
  auto mod = make_modifier({{"modifier", "samsp"}, {"sparsity", 0.6}, {"delta", 0.2}, {"mask", mask}});
  run_sequential(*m, test::random_tokens(4, 32, ts.vocab, 1), {mod.get()}, PipelineOptions{.progress = false});
  int64_t zeros = 0, total = 0;
  std::vector<double> sp;
  for (const auto& b : m->blocks)
    for (const auto& l : b.lin) {
      std::vector<float> d = l.w->dense();
      const int64_t zl = std::count(d.begin(), d.end(), 0.0f);
      zeros += zl, total += int64_t(d.size());
      sp.push_back(double(zl) / double(d.size()));
      EXPECT_EQ(l.w->format(), "sparse_bitmap_f32");
    }
  EXPECT_EQ(zeros, prune_count(total, 0.6));
  EXPECT_GT(*std::max_element(sp.begin(), sp.end()) - *std::min_element(sp.begin(), sp.end()), 0.05);  // mixed
  }
  EXPECT_THROW(make_modifier({{"modifier", "samsp"}, {"nm", "2:4"}}), Error);
}

// ---------------------------------------------------------------------------------------------------
// GUM

// Neurons 0 and 1 are duplicates (same activations), neuron 2 is unique; all three contribute the same output
// energy. The first removed is a duplicate; afterwards its twin is unique and neuron 3 (low energy) goes next.
TEST(Gum, DuplicateNeuronGoesBeforeUniqueOneOfEqualSensitivity) {
  const int64_t T = 6, F = 4;
  const double A[T][F] = {{1, 1, 0, 0.1}, {2, 2, 1, 0}, {0, 0, 2, 0.1}, {1, 1, -1, 0}, {0, 0, 0, 0.2}, {1, 1, 1, -0.1}};
  std::vector<double> G(size_t(F * F), 0.0);
  for (int64_t t = 0; t < T; t++)
    for (int64_t i = 0; i < F; i++)
      for (int64_t j = 0; j < F; j++) G[size_t(i * F + j)] += A[t][i] * A[t][j];
  ASSERT_DOUBLE_EQ(G[0], G[2 * F + 2]);  // equal ‖a‖²: equal sensitivity with equal down norms
  std::vector<double> col2 = {1.0, 1.0, 1.0, 1.0};
  std::vector<int> order = gum_removal_order(G, col2, F, 2);
  EXPECT_TRUE(order[0] == 0 || order[0] == 1);
  EXPECT_EQ(order[1], 3);  // |cos(a_3, ·)| < 1 and ‖a_3‖² ≪ the others'
  // Without the uniqueness term (distinct activations), the order follows sensitivity alone.
  std::vector<double> Gd = {4, 0, 0, 0, 9, 0, 0, 0, 1};
  EXPECT_EQ(gum_removal_order(Gd, {1, 1, 1}, 3, 2), (std::vector<int>{2, 0}));
}

// The shrunk model computes what the dense model computes with the removed neurons masked (their down_proj
// columns zeroed), and it saves and reloads.
TEST(Gum, ShrunkModelEqualsMaskedDense) {
  std::string dir = test::temp_dir("gum_tiny");
  test::TinySpec ts;
  test::write_tiny_model(dir + "/m", ts);
  auto m = load_model(dir + "/m"), masked = load_model(dir + "/m");
  auto mod = make_modifier({{"modifier", "gum"}, {"sparsity", 0.25}});
  run_sequential(*m, test::random_tokens(4, 32, ts.vocab, 1), {mod.get()}, PipelineOptions{.progress = false});
  for (int l = 0; l < ts.layers; l++) {
    const Linear& g = m->blocks[size_t(l)].at(LinearKind::Gate);
    ASSERT_EQ(g.out(), ts.ffn - ts.ffn / 4);
    ASSERT_EQ(m->blocks[size_t(l)].at(LinearKind::Down).in(), g.out());
    // Which neurons survive: match the kept gate rows against the original ones.
    std::vector<float> Wg = g.w->dense(), Wg0 = masked->blocks[size_t(l)].at(LinearKind::Gate).w->dense();
    std::vector<char> kept(static_cast<size_t>(ts.ffn), 0);
    for (int64_t r = 0; r < g.out(); r++)
      for (int64_t j = 0; j < ts.ffn; j++)
        if (std::equal(Wg.begin() + r * ts.hidden, Wg.begin() + (r + 1) * ts.hidden, Wg0.begin() + j * ts.hidden)) kept[size_t(j)] = 1;
    EXPECT_EQ(std::count(kept.begin(), kept.end(), 1), g.out());
    Linear& down = masked->blocks[size_t(l)].at(LinearKind::Down);
    std::vector<float> Wd = down.w->dense();
    for (int64_t r = 0; r < ts.hidden; r++)
      for (int64_t j = 0; j < ts.ffn; j++)
        if (!kept[size_t(j)]) Wd[size_t(r * ts.ffn + j)] = 0;
    down.w = std::make_unique<DenseF32>(int64_t(ts.hidden), int64_t(ts.ffn), std::move(Wd));
  }
  const std::vector<int> ids = test::random_tokens(1, 20, ts.vocab, 9)[0];
  std::vector<float> a = test::prefill_logits(*m, ids), b = test::prefill_logits(*masked, ids);
  EXPECT_LT(test::max_abs_diff(a.data(), b.data(), a.size()), 1e-4);
  save_model(*m, dir + "/out");
  auto back = load_model(dir + "/out");
  EXPECT_EQ(back->cfg.ffn(0), ts.ffn - ts.ffn / 4);
  EXPECT_EQ(test::prefill_logits(*back, ids), a);
}

// ---------------------------------------------------------------------------------------------------
// Flash-LLM-style prefill kernel of the bitmap format: equal to the scalar reference (per token, double).

TEST(FlashPrefill, FusedBitmapGemmEqualsReference) {
  if (!sparse_simd_available()) GTEST_SKIP() << "no AVX-512: the fused kernel does not run";
  for (auto [rows, cols, n, p, v] : {std::tuple{70, 128, 16, 0.6, SparseValues::F32}, std::tuple{33, 64, 23, 0.8, SparseValues::F32},
                                     std::tuple{129, 192, 64, 0.5, SparseValues::F16}, std::tuple{8, 48, 17, 0.0, SparseValues::F16},
                                     std::tuple{21, 2112, 19, 0.7, SparseValues::F32}}) {  // 3 column blocks, ragged
    std::vector<float> W = test::random_vector(size_t(rows * cols), uint32_t(rows));
    std::mt19937 rng(static_cast<uint32_t>(cols));
    for (float& w : W)
      if (std::uniform_real_distribution<double>(0, 1)(rng) < p) w = 0;
    auto bm = SparseBitmap::from_dense(rows, cols, W.data(), v);
    std::vector<float> X = test::random_vector(size_t(n * cols), 3), Y(size_t(n * rows), -1.0f), ref(static_cast<size_t>(rows));
    bm->matmul(X.data(), n, Y.data());
    for (int64_t t = 0; t < n; t++) {
      bm->gemv_ref(X.data() + t * cols, ref.data());
      for (int64_t r = 0; r < rows; r++) EXPECT_NEAR(Y[size_t(t * rows + r)], ref[size_t(r)], 2e-5 * cols) << t << " " << r;
    }
  }
}

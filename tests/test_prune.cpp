// Pruning methods (src/prune): the shared mask helper's exact counts, Wanda against an independent
// recomputation of its mask, SparseGPT's reconstruction error below Wanda's and magnitude's on a layer with
// correlated inputs (50% and 2:4), SparseGPT's exact patterns and joint 4-bit form, DSnoT's invariants, OWL's
// layer sparsities, malformed options; then the real model against models/README.md's references.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "compress/recipe.h"
#include "core/error.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "kernels/qint.h"
#include "kernels/sparse.h"
#include "model/model.h"
#include "prune/dsnot.h"
#include "prune/magnitude.h"
#include "prune/mask.h"
#include "prune/owl.h"
#include "prune/sparsegpt.h"
#include "prune/wanda.h"
#include "testutil.h"

using namespace lmp;

namespace {

// A layer W (rows × cols) and inputs X (n × cols) whose channels are correlated (X = Z·A) with unequal scales,
// so that the Hessian is far from diagonal and activation norms vary.
struct Layer {
  int64_t rows = 48, cols = 256, n = 1024;
  std::vector<float> W, X;
  std::vector<double> H, xnorm;
};

Layer make_layer(uint32_t seed) {
  Layer L;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  L.W.resize(size_t(L.rows * L.cols));
  for (float& w : L.W) w = nd(rng);
  const int64_t k = 32;  // latent factors
  std::vector<float> A(size_t(k * L.cols)), scale(size_t(L.cols));
  for (float& a : A) a = nd(rng);
  for (float& s : scale) s = std::exp(nd(rng));
  L.X.assign(size_t(L.n * L.cols), 0.0f);
  for (int64_t t = 0; t < L.n; t++) {
    std::vector<float> z(static_cast<size_t>(k));
    for (float& v : z) v = nd(rng);
    for (int64_t c = 0; c < L.cols; c++) {
      float s = 0.3f * nd(rng);
      for (int64_t j = 0; j < k; j++) s += z[size_t(j)] * A[size_t(j * L.cols + c)];
      L.X[size_t(t * L.cols + c)] = s * scale[size_t(c)];
    }
  }
  L.H.assign(size_t(L.cols * L.cols), 0.0);  // H = 2/n · XᵀX
  L.xnorm.assign(size_t(L.cols), 0.0);
  for (int64_t t = 0; t < L.n; t++)
    for (int64_t i = 0; i < L.cols; i++) {
      const double xi = L.X[size_t(t * L.cols + i)];
      L.xnorm[size_t(i)] += xi * xi;
      for (int64_t j = 0; j < L.cols; j++) L.H[size_t(i * L.cols + j)] += 2.0 / double(L.n) * xi * L.X[size_t(t * L.cols + j)];
    }
  for (double& v : L.xnorm) v = std::sqrt(v);
  return L;
}

// ‖W X ᵀ − Ŵ Xᵀ‖² over the layer's inputs.
double output_error(const Layer& L, const std::vector<float>& What) {
  double e = 0;
  for (int64_t t = 0; t < L.n; t++)
    for (int64_t r = 0; r < L.rows; r++) {
      double d = 0;
      for (int64_t c = 0; c < L.cols; c++)
        d += (double(L.W[size_t(r * L.cols + c)]) - What[size_t(r * L.cols + c)]) * L.X[size_t(t * L.cols + c)];
      e += d * d;
    }
  return e;
}

std::vector<float> masked(const std::vector<float>& W, const std::vector<uint8_t>& mask) {
  std::vector<float> out = W;
  apply_mask(out.data(), mask.data(), int64_t(out.size()));
  return out;
}

int64_t zeros_in(const float* w, int64_t n) { return std::count(w, w + n, 0.0f); }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// The mask helper

TEST(PruneMask, ExactCountsPerRowMatrixAndGroup) {
  std::vector<float> S = test::random_vector(10 * 37, 1);
  for (float& s : S) s = std::fabs(s);
  auto m = select_mask(S.data(), 10, 37, SparsitySpec{0.6, {}});
  for (int r = 0; r < 10; r++) EXPECT_EQ(std::accumulate(m.begin() + r * 37, m.begin() + r * 37 + 37, 0), 22);  // ⌊0.6·37⌋
  std::vector<uint8_t> mm(S.size(), 0);
  mask_lowest_in_matrix(S.data(), int64_t(S.size()), 0.5, mm.data());
  EXPECT_EQ(std::accumulate(mm.begin(), mm.end(), 0), 185);
  float max_pruned = 0, min_kept = 1e30f;
  for (size_t i = 0; i < S.size(); i++) {
    if (mm[i]) max_pruned = std::max(max_pruned, S[i]);
    else min_kept = std::min(min_kept, S[i]);
  }
  EXPECT_LE(max_pruned, min_kept);
  std::vector<float> T = test::random_vector(6 * 40, 2);
  auto nm = select_mask(T.data(), 6, 40, SparsitySpec{0.5, {4, 8}});
  for (int r = 0; r < 6; r++)
    for (int g = 0; g < 40; g += 8) EXPECT_EQ(std::accumulate(nm.begin() + r * 40 + g, nm.begin() + r * 40 + g + 8, 0), 4);
}

// ---------------------------------------------------------------------------------------------------
// Methods on one layer

TEST(PruneMethods, WandaEqualsIndependentRecomputation) {
  Layer L = make_layer(3);
  auto mask = wanda_mask(L.W.data(), L.rows, L.cols, L.xnorm, SparsitySpec{0.5, {}});
  for (int64_t r = 0; r < L.rows; r++) {
    std::vector<std::pair<double, int64_t>> s;  // (|W|·‖X‖, column), sorted: the first half is pruned
    for (int64_t c = 0; c < L.cols; c++) s.push_back({std::fabs(double(L.W[size_t(r * L.cols + c)])) * L.xnorm[size_t(c)], c});
    std::sort(s.begin(), s.end());
    for (int64_t i = 0; i < L.cols; i++) EXPECT_EQ(mask[size_t(r * L.cols + s[size_t(i)].second)], i < L.cols / 2 ? 1 : 0);
  }
}

TEST(PruneMethods, SparseGptBeatsWandaBeatsMagnitude) {
  Layer L = make_layer(4);
  for (SparsitySpec spec : {SparsitySpec{0.5, {}}, SparsitySpec{0.5, {2, 4}}}) {
    SCOPED_TRACE(spec.nm.active() ? "2:4" : "50%");
    const double e_mag = output_error(L, masked(L.W, magnitude_mask(L.W.data(), L.rows, L.cols, spec, MagnitudeScope::Row)));
    const double e_wanda = output_error(L, masked(L.W, wanda_mask(L.W.data(), L.rows, L.cols, L.xnorm, spec)));
    SparseGptOptions o;
    o.spec = spec;
    o.block = 128;
    SparseGptResult r = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, o, "test");
    const double e_sgpt = output_error(L, r.W);
    EXPECT_LT(e_sgpt, e_wanda);
    EXPECT_LT(e_wanda, e_mag);
    EXPECT_LT(e_sgpt, 0.8 * e_wanda) << "the OBS update should recover a good part of the error";
  }
}

TEST(PruneMethods, SparseGptExactPatterns) {
  Layer L = make_layer(5);
  SparseGptOptions o;
  o.spec = SparsitySpec{0.5, {}};
  o.block = 96;  // blocks 96 + 96 + 64: ⌊0.5·B⌋ each
  SparseGptResult r = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, o, "test");
  for (int64_t row = 0; row < L.rows; row++) {
    const float* w = r.W.data() + row * L.cols;
    EXPECT_EQ(zeros_in(w, 96), 48);
    EXPECT_EQ(zeros_in(w + 96, 96), 48);
    EXPECT_EQ(zeros_in(w + 192, 64), 32);
  }
  o.spec = SparsitySpec{0.5, {4, 8}};
  o.block = 128;
  r = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, o, "test");
  for (int64_t i = 0; i < L.rows * L.cols; i += 8) EXPECT_EQ(zeros_in(r.W.data() + i, 8), 4);
  WeightPtr w = sparsegpt_store(r, L.rows, L.cols, o, StoreOptions{o.spec.nm}, "test");
  EXPECT_EQ(w->format(), "nm4_8_f32");
  EXPECT_EQ(w->dense(), r.W);
}

TEST(PruneMethods, SparseGptJointFourBit) {
  Layer L = make_layer(6);
  SparseGptOptions o;
  o.spec = SparsitySpec{0.5, {2, 4}};
  o.quantize = true;
  o.grid = QuantGrid{.bits = 4, .sym = false, .group = 128};
  SparseGptResult r = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, o, "test");
  WeightPtr w = sparsegpt_store(r, L.rows, L.cols, o, StoreOptions{o.spec.nm}, "test");
  EXPECT_EQ(w->format(), "nm2_4_int4_g128_asym");
  EXPECT_EQ(w->dense(), r.W);  // what the sweep compensated for is exactly what is stored
  EXPECT_LT(w->bits_per_weight(), 3.3);
  o.spec = SparsitySpec{0.5, {}};  // unstructured + 4-bit: a QIntMatrix whose pruned codes are zero
  r = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, o, "test");
  w = sparsegpt_store(r, L.rows, L.cols, o, StoreOptions{}, "test");
  EXPECT_EQ(w->format(), "int4_g128_asym");
  std::vector<float> d = w->dense();
  EXPECT_EQ(d, r.W);
  EXPECT_GE(zeros_in(d.data(), int64_t(d.size())), L.rows * L.cols / 2);
  // The sweep compensates the rounding too: better than rounding SparseGPT's pruned weights afterwards.
  SparseGptOptions p = o;
  p.quantize = false;
  std::vector<float> pruned = sparsegpt_prune(L.W.data(), L.rows, L.cols, L.H, p, "t").W;
  EXPECT_LT(output_error(L, d), output_error(L, QIntMatrix::quantize(L.rows, L.cols, pruned.data(), o.grid)->dense()));
}

TEST(PruneMethods, DsnotKeepsCountsAndShrinksExpectedError) {
  Layer L = make_layer(7);
  std::vector<double> mean(size_t(L.cols), 0.0), var(size_t(L.cols), 0.0);
  for (int64_t t = 0; t < L.n; t++)
    for (int64_t c = 0; c < L.cols; c++) mean[size_t(c)] += L.X[size_t(t * L.cols + c)] / double(L.n);
  for (auto& v : mean) v += 0.5;  // a nonzero mean so the expected error is far from zero
  for (int64_t c = 0; c < L.cols; c++) var[size_t(c)] = L.xnorm[size_t(c)] * L.xnorm[size_t(c)] / double(L.n);
  for (NMPattern nm : {NMPattern{}, NMPattern{2, 4}}) {
    SparsitySpec spec{0.5, nm};
    std::vector<float> S = wanda_scores(L.W.data(), L.rows, L.cols, L.xnorm);
    std::vector<uint8_t> m0 = select_mask(S.data(), L.rows, L.cols, spec), m = m0;
    DsnotOptions o;
    o.nm = nm;
    o.threshold = 0;
    int64_t swaps = dsnot_refine(L.W.data(), L.rows, L.cols, S.data(), mean, var, o, m.data());
    EXPECT_GT(swaps, 0);
    auto eps = [&](const std::vector<uint8_t>& mk, int64_t r) {
      double e = 0;
      for (int64_t c = 0; c < L.cols; c++)
        if (mk[size_t(r * L.cols + c)]) e += L.W[size_t(r * L.cols + c)] * mean[size_t(c)];
      return e;
    };
    double before = 0, after = 0;  // the sign criterion does not promise every row shrinks; the sum does
    for (int64_t r = 0; r < L.rows; r++) {
      EXPECT_EQ(std::accumulate(m.begin() + r * L.cols, m.begin() + (r + 1) * L.cols, 0), L.cols / 2);
      before += std::fabs(eps(m0, r)), after += std::fabs(eps(m, r));
      if (nm.active()) {
        for (int64_t g = 0; g < L.cols; g += 4)
          EXPECT_EQ(std::accumulate(m.begin() + r * L.cols + g, m.begin() + r * L.cols + g + 4, 0), 2);
      }
    }
    EXPECT_LT(after, 0.5 * before);
  }
}

TEST(PruneMethods, OwlSparsities) {
  std::vector<double> D = {0.01, 0.05, 0.03, 0.02};
  std::vector<double> s = owl_sparsities(D, 0.7, 0.08);
  EXPECT_NEAR(std::accumulate(s.begin(), s.end(), 0.0) / 4, 0.7, 1e-12);
  EXPECT_NEAR(*std::max_element(s.begin(), s.end()) - *std::min_element(s.begin(), s.end()), 0.16, 1e-12);
  EXPECT_LT(s[1], s[2]);  // more outliers → pruned less
  EXPECT_LT(s[2], s[3]);
  EXPECT_LT(s[3], s[0]);
  EXPECT_EQ(owl_sparsities({0.1, 0.1}, 0.5, 0.08), (std::vector<double>{0.5, 0.5}));
}

TEST(PruneMethods, BadOptionsNameTheProblem) {
  auto msg = [](auto f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([] { make_modifier({{"modifier", "wanda"}, {"sparsity", 0.0}}); }).find("outside (0, 1)"), std::string::npos);
  EXPECT_NE(msg([] { make_modifier({{"modifier", "magnitude"}, {"sparsity", 1.5}}); }).find("sparsity"), std::string::npos);
  EXPECT_NE(msg([] { make_modifier({{"modifier", "sparsegpt"}, {"nm", "4:4"}}); }).find("N < M"), std::string::npos);
  EXPECT_NE(msg([] { make_modifier({{"modifier", "wanda"}, {"nm", "2-4"}}); }).find("N:M"), std::string::npos);
  EXPECT_NE(msg([] { make_modifier({{"modifier", "wanda"}, {"nm", "2:4"}, {"owl", true}}); }).find("--owl"), std::string::npos);
  EXPECT_NE(msg([] { make_modifier({{"modifier", "sparsegpt"}, {"nm", "2:4"}, {"bits", 3}}); }).find("no stored format"),
            std::string::npos);
  EXPECT_NE(msg([] { check_sparsity_spec(SparsitySpec{0.5, {4, 8}}, 172, "model.layers.0.mlp.down_proj"); })
                .find("model.layers.0.mlp.down_proj: width 172 is not divisible by M = 8"),
            std::string::npos);
  EXPECT_THROW(make_modifier({{"modifier", "dsnot"}, {"initial", "random"}}), Error);
  std::string err;
  EXPECT_EQ(test::run_lmpress("prune --model /nonexistent --method wanda --sparsity 1.2 -o /tmp/x", nullptr, &err), 2);
  EXPECT_NE(err.find("sparsity"), std::string::npos) << err;
}

TEST(PruneMethods, TinyModelEndToEndWithOwlAndDsnot) {
  std::string dir = test::temp_dir("prune_tiny");
  test::TinySpec ts;
  test::write_tiny_model(dir + "/m", ts);
  auto m = load_model(dir + "/m");
  Samples samples;
  std::mt19937 rng(1);
  for (int s = 0; s < 4; s++) {
    std::vector<int> ids(32);
    for (int& t : ids) t = int(rng() % uint32_t(ts.vocab));
    samples.push_back(ids);
  }
  for (nlohmann::json st : {nlohmann::json{{"modifier", "dsnot"}, {"sparsity", 0.5}},
                            nlohmann::json{{"modifier", "wanda"}, {"sparsity", 0.6}, {"owl", true}}}) {
    auto mm = load_model(dir + "/m");
    auto mod = make_modifier(st);
    run_sequential(*mm, samples, {mod.get()}, PipelineOptions{.progress = false});
    int64_t zeros = 0, total = 0;
    for (const auto& b : mm->blocks)
      for (const auto& l : b.lin) {
        std::vector<float> w = l.w->dense();
        zeros += zeros_in(w.data(), int64_t(w.size())), total += int64_t(w.size());
        EXPECT_EQ(l.w->format(), "sparse_bitmap_f32");
      }
    EXPECT_NEAR(double(zeros) / double(total), st["sparsity"].get<double>(), 0.03);  // OWL: the layer mean is the target
  }
}

// ---------------------------------------------------------------------------------------------------
// The real model (models/README.md): magnitude and Wanda are deterministic (0.5%), SparseGPT within 3%.

TEST(PruneRealModel, StoriesReferences) {
  std::string model = LMP_REQUIRE_SHARED("models/stories260K");
  std::string calib = LMP_REQUIRE_SHARED("data/tinystories/calib.txt");
  std::string eval = LMP_REQUIRE_SHARED("data/tinystories/eval.txt");
  auto base = load_model(model);
  const std::vector<int> ids = tokenize_file(base->tokenizer(), eval, TextFormat::Docs);
  struct Case {
    nlohmann::json stage;
    double ref, tol;
    std::string format;  // stored form of every projection
  };
  const std::vector<Case> cases = {
      {{{"modifier", "magnitude"}, {"sparsity", 0.5}}, 43.080, 0.005, "sparse_bitmap_f32"},
      {{{"modifier", "wanda"}, {"sparsity", 0.5}}, 20.245, 0.005, "sparse_bitmap_f32"},
      {{{"modifier", "sparsegpt"}, {"sparsity", 0.5}}, 14.821, 0.03, "sparse_bitmap_f32"},
      {{{"modifier", "sparsegpt"}, {"nm", "2:4"}}, 31.628, 0.03, "nm2_4_f32"},
  };
  std::vector<double> ppl;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.stage.dump());
    auto m = load_model(model);
    nlohmann::json rj = {{"stages", {c.stage}},
                         {"calibration", {{"path", calib}, {"format", "docs"}, {"nsamples", 64}, {"seqlen", 512}}}};
    run_recipe(*m, parse_recipe(rj, "test"), false);
    for (const auto& b : m->blocks)
      for (const auto& l : b.lin) EXPECT_EQ(l.w->format(), c.format);
    PplOptions po;
    po.progress = false;
    PplResult r = perplexity(*m, ids, po);
    EXPECT_NEAR(r.ppl, c.ref, c.ref * c.tol);
    ppl.push_back(r.ppl);
  }
  EXPECT_LT(ppl[2], ppl[1]);  // SparseGPT < Wanda < magnitude
  EXPECT_LT(ppl[1], ppl[0]);
}

// Issue 8: QuIP / QuIP#-style incoherence processing (kernels/hadamard, kernels/quip_matrix, quant/quip), checked
// against independent computations: the dense Sylvester Hadamard matrix, dense transform matrices, the
// double-precision reference kernels, the Hessian-weighted layer error of plain GPTQ.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "compress/recipe.h"
#include "core/mmap_file.h"
#include "kernels/hadamard.h"
#include "kernels/qint.h"
#include "kernels/quip_matrix.h"
#include "model/model.h"
#include "quant/quip.h"
#include "testutil.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

// Normalized Sylvester matrix from its closed form H[i][j] = (−1)^popcount(i & j) / √p.
std::vector<double> sylvester(int64_t p) {
  std::vector<double> H(size_t(p * p));
  for (int64_t i = 0; i < p; i++)
    for (int64_t j = 0; j < p; j++) H[size_t(i * p + j)] = (__builtin_popcountll(uint64_t(i & j)) & 1 ? -1.0 : 1.0) / std::sqrt(double(p));
  return H;
}

// Gaussian weights with a few planted outliers (×scale), the case incoherence processing is for.
std::vector<float> outlier_weights(int64_t rows, int64_t cols, int n_out, float scale, uint32_t seed) {
  std::vector<float> W = test::random_vector(size_t(rows * cols), seed, 0.05f);
  std::mt19937 g(seed + 1);
  for (int k = 0; k < n_out; k++) W[g() % W.size()] *= scale;
  return W;
}

// H = 2/n XᵀX for X = Z·(I + low-rank mix), a few columns ×8.
std::vector<double> correlated_hessian(int64_t d, int64_t n, uint32_t seed) {
  std::vector<float> Z = test::random_vector(size_t(n * d), seed), U = test::random_vector(size_t(d * 3), seed + 1, 0.4f);
  std::vector<double> X(size_t(n * d), 0.0), H(size_t(d * d), 0.0);
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < d; i++) {
      double x = Z[size_t(t * d + i)];
      for (int r = 0; r < 3; r++) x += 0.5 * U[size_t(i * 3 + r)] * Z[size_t(t * d + (i * 7 + r) % d)];
      X[size_t(t * d + i)] = i % 41 == 5 ? 8 * x : x;
    }
  for (int64_t t = 0; t < n; t++)
    for (int64_t i = 0; i < d; i++)
      for (int64_t j = 0; j < d; j++) H[size_t(i * d + j)] += 2.0 / double(n) * X[size_t(t * d + i)] * X[size_t(t * d + j)];
  return H;
}

void inner_qint_ref(const WeightMatrix& inner, const float* X, int64_t n, float* Y) {
  qint_matmul_ref(dynamic_cast<const QIntMatrix&>(inner), X, n, Y);
}

}  // namespace

TEST(Hadamard, FastTransformEqualsDenseSylvesterProduct) {
  for (int64_t p : {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}) {
    std::vector<float> x = test::random_vector(size_t(p), uint32_t(p)), y = x, yr = x;
    fwht(y.data(), p);
    fwht_ref(yr.data(), p);
    std::vector<double> H = sylvester(p);
    std::vector<float> want(static_cast<size_t>(p));
    for (int64_t i = 0; i < p; i++) {
      double s = 0;
      for (int64_t j = 0; j < p; j++) s += H[size_t(i * p + j)] * x[size_t(j)];
      want[size_t(i)] = float(s);
    }
    EXPECT_LT(test::max_rel_diff(y.data(), want.data(), size_t(p)), 1e-5) << p;
    EXPECT_LT(test::max_rel_diff(yr.data(), want.data(), size_t(p)), 1e-5) << p;
  }
}

TEST(Hadamard, RandomizedTransformIsOrthogonalAndExactlyInvertible) {
  for (int64_t n : {1, 3, 32, 64, 65, 100, 172, 688}) {
    RandomHadamard T(n, 1234 + uint64_t(n));
    std::vector<double> M = T.matrix();
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += M[size_t(i * n + k)] * M[size_t(j * n + k)];
        worst = std::max(worst, std::fabs(s - (i == j)));
      }
    EXPECT_LT(worst, 1e-6) << "T Tᵀ = I, n = " << n;
    // Incoherent: max|T_ij|·√n is 1 for a power of two; for the windowed transforms about what a random
    // orthogonal matrix gives, √(2 ln n²) (an identity block left over would give √n).
    double mx = 0;
    for (double v : M) mx = std::max(mx, std::fabs(v));
    EXPECT_LT(mx * std::sqrt(double(n)), is_pow2(n) ? 1.0 + 1e-9 : 2.0 * std::sqrt(std::log(double(n))) + 0.5) << n;
    // Fast kernel: x → T x equals the dense product; inverse round trip.
    std::vector<float> x = test::random_vector(size_t(n), 7), y = x;
    T.forward(y.data());
    std::vector<float> want(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) {
      double s = 0;
      for (int64_t j = 0; j < n; j++) s += M[size_t(i * n + j)] * x[size_t(j)];
      want[size_t(i)] = float(s);
    }
    EXPECT_LT(test::max_rel_diff(y.data(), want.data(), size_t(n)), 1e-5) << n;
    T.inverse(y.data());
    EXPECT_LT(test::max_abs_diff(y.data(), x.data(), size_t(n)), 1e-5 * test::max_abs(x.data(), size_t(n))) << n;
  }
  // Seeded: the same seed rebuilds the same transform, another seed a different one.
  EXPECT_EQ(RandomHadamard(172, 5).matrix(), RandomHadamard(172, 5).matrix());
  EXPECT_NE(RandomHadamard(172, 5).matrix(), RandomHadamard(172, 6).matrix());
  // Seed 0 is the identity (the side a one-sided QuIP leaves alone).
  std::vector<double> I = RandomHadamard(172, 0).matrix();
  for (int64_t i = 0; i < 172; i++)
    for (int64_t j = 0; j < 172; j++) ASSERT_EQ(I[size_t(i * 172 + j)], double(i == j));
  // The cost statement of kernels/hadamard.h: 172 → 3 windows of 128.
  EXPECT_EQ(RandomHadamard(172, 1).butterflies(), 3 * 64 * 7);
}

TEST(Quip, IncoherenceProcessingFlattensPlantedOutliersAndKeepsTheProxyLoss) {
  const int64_t m = 64, n = 172;
  std::vector<float> W = outlier_weights(m, n, 6, 60.0f, 3);
  RandomHadamard u(m, 11), v(n, 12);
  std::vector<float> Wp = incoherent_weights(W.data(), m, n, u, v);
  // W' = U W Vᵀ against the dense matrices.
  std::vector<double> U = u.matrix(), V = v.matrix();
  double worst = 0;
  for (int64_t i = 0; i < m; i += 7)
    for (int64_t j = 0; j < n; j += 5) {
      double s = 0;
      for (int64_t a = 0; a < m; a++)
        for (int64_t b = 0; b < n; b++) s += U[size_t(i * m + a)] * W[size_t(a * n + b)] * V[size_t(j * n + b)];
      worst = std::max(worst, std::fabs(s - Wp[size_t(i * n + j)]));
    }
  EXPECT_LT(worst, 1e-6);
  const double mu = incoherence_mu(W.data(), m, n), mup = incoherence_mu(Wp.data(), m, n);
  EXPECT_GT(mu, 30.0);
  EXPECT_LT(mup, 8.0) << "μ(W) = " << mu;
  // tr(ΔW H ΔWᵀ) = tr(ΔW' H' ΔW'ᵀ) for any ΔW, with H' = V H Vᵀ.
  std::vector<double> H = correlated_hessian(n, 400, 5), Hp = incoherent_hessian(H, v);
  std::vector<float> D = test::random_vector(size_t(m * n), 9), Z(D.size(), 0.0f);
  std::vector<float> Dp = incoherent_weights(D.data(), m, n, u, v);
  const double e = test::hessian_error(D.data(), Z.data(), m, n, H), ep = test::hessian_error(Dp.data(), Z.data(), m, n, Hp);
  EXPECT_NEAR(ep / e, 1.0, 1e-5);
}

TEST(Quip, BeatsGptqAtTwoAndThreeBitsOnLayerWithOutliers) {
  const int64_t m = 64, n = 172;
  std::vector<float> W = outlier_weights(m, n, 12, 25.0f, 21);
  std::vector<double> H = correlated_hessian(n, 600, 22);
  for (int bits : {2, 3}) {
    for (int group : {0, 64}) {
      QuipOptions o;
      o.gptq.grid.bits = bits;
      o.gptq.grid.group = group;
      auto q = quip_quantize(W.data(), m, n, H, o, "layer");
      auto g = gptq_quantize(W.data(), m, n, H, o.gptq, "layer").q;
      const double eq = test::hessian_error(W.data(), q->dense().data(), m, n, H);
      const double eg = test::hessian_error(W.data(), g->dense().data(), m, n, H);
      EXPECT_LT(eq, 0.8 * eg) << bits << " bits, group " << group << ": quip " << eq << " gptq " << eg;
      EXPECT_EQ(q->inner().format(), QIntMatrix::format_name(o.gptq.grid));
      EXPECT_EQ(q->nbytes(), g->nbytes() + 16);  // the two seeds
      // One-sided (U = I): still better than GPTQ here, the output rows stay in their basis.
      QuipOptions o1 = o;
      o1.output_transform = false;
      auto q1 = quip_quantize(W.data(), m, n, H, o1, "layer");
      EXPECT_EQ(q1->u().seed(), 0u);
      EXPECT_LT(test::hessian_error(W.data(), q1->dense().data(), m, n, H), 0.8 * eg) << bits << " bits, one-sided";
    }
  }
}

TEST(Quip, KernelMatchesReferenceAndDequantizedProduct) {
  const int64_t sgemm_n = qint_sgemm_min_n();
  qint_set_sgemm_min_n(8);  // prefill path from 8 rows (the default never takes it)
  for (auto [m, n] : {std::pair<int64_t, int64_t>{172, 64}, {64, 172}, {32, 64}}) {
    std::vector<float> W = outlier_weights(m, n, 4, 20.0f, uint32_t(m + n));
    std::vector<double> H = correlated_hessian(n, 300, 2);
    QuipOptions o;
    o.gptq.grid.bits = 2;
    o.gptq.grid.group = 32;
    auto q = quip_quantize(W.data(), m, n, H, o, "k");
    std::vector<float> Wd = q->dense();
    for (int64_t t : {int64_t(1), int64_t(3), qint_sgemm_min_n() + 1}) {
      std::vector<float> X = test::random_vector(size_t(t * n), uint32_t(t)), Y(size_t(t * m)), Yr(Y.size()), Yd(Y.size());
      q->matmul(X.data(), t, Y.data());
      for (int64_t i = 0; i < t; i++)  // dequantize-then-dense product in double
        for (int64_t r = 0; r < m; r++) {
          double s = 0;
          for (int64_t c = 0; c < n; c++) s += double(Wd[size_t(r * n + c)]) * X[size_t(i * n + c)];
          Yd[size_t(i * m + r)] = float(s);
        }
      // The int8-activation kernels round x' to int8 per block of 32: ~1/254 of the block's largest |x'|.
      EXPECT_LT(test::rel_rms_error(Y.data(), Yd.data(), Y.size()), 1e-2) << m << "x" << n << " n=" << t;
      if (t < qint_sgemm_min_n()) {
        quip_matmul_ref(*q, X.data(), t, Yr.data(), inner_qint_ref);
        EXPECT_LT(test::max_rel_diff(Y.data(), Yr.data(), Y.size()), 1e-5) << m << "x" << n << " n=" << t;
      } else {
        EXPECT_LT(test::max_rel_diff(Y.data(), Yd.data(), Y.size()), 1e-5) << "sgemm path " << m << "x" << n;
      }
    }
  }
  qint_set_sgemm_min_n(sgemm_n);
}

TEST(Quip, SavesLoadsAndRunsAsRecipeStageAndFromCli) {
  std::string dir = test::temp_dir("quip"), model = dir + "/m";
  test::TinySpec spec;  // hidden 32, ffn 48 (not a power of two)
  spec.vocab = 512;
  test::write_tiny_model(model, spec);
  std::string tok = test::shared_dir() + "/models/stories260K/tokenizer.json";
  if (!test::exists(tok)) GTEST_SKIP() << "needs a tokenizer.json: " << tok;
  fs::copy_file(tok, model + "/tokenizer.json");
  std::string calib = dir + "/calib.txt", text;
  for (int i = 0; i < 3000; i++) text += "Once upon a time there was a little girl. "[i % 43];
  write_file_atomic(calib, text.data(), text.size());
  std::string out, err;
  ASSERT_EQ(test::run_lmpress("quantize --model " + model + " --method quip --bits 2 --group 32 --calib " + calib +
                                  " --nsamples 4 --seqlen 32 --json -o " + dir + "/q2",
                              &out, &err),
            0)
      << err;
  auto q = load_model(dir + "/q2");
  auto ref = load_model(model);
  for (size_t b = 0; b < q->blocks.size(); b++)
    for (size_t k = 0; k < q->blocks[b].lin.size(); k++) {
      const WeightMatrix& w = *q->blocks[b].lin[k].w;
      ASSERT_EQ(w.format(), "quip") << b << " " << k;
      const auto& qm = dynamic_cast<const QuipMatrix&>(w);
      EXPECT_EQ(qm.inner().format(), "int2_g32_asym");
      // The dequantized layer is rotated back: correlated with the original (a W' left rotated would be
      // uncorrelated with W, relative error ≈ √2). 2-bit GPTQ on 128 random-text tokens is coarse, hence 0.9.
      std::vector<float> Wq = w.dense(), W0 = ref->blocks[b].lin[k].w->dense();
      EXPECT_LT(test::rel_rms_error(Wq.data(), W0.data(), W0.size()), 0.9) << b << " " << k;
    }
  // Saving the loaded model again gives the same bytes per Linear and the same outputs.
  save_model(*q, dir + "/q2b");
  auto q2 = load_model(dir + "/q2b");
  auto X = test::random_vector(size_t(2 * 48), 3);
  const WeightMatrix &a = *q->blocks[1].lin[6].w, &bw = *q2->blocks[1].lin[6].w;
  std::vector<float> ya(size_t(2 * a.rows())), yb(ya.size());
  a.matmul(X.data(), 2, ya.data());
  bw.matmul(X.data(), 2, yb.data());
  EXPECT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * 4));
  EXPECT_EQ(a.nbytes(), bw.nbytes());
  // One-sided from the CLI: U = I stored as seed 0, V still seeded.
  ASSERT_EQ(test::run_lmpress("quantize --model " + model + " --method quip --input-only --bits 3 --group 0 --calib " +
                                  calib + " --nsamples 4 --seqlen 32 -o " + dir + "/q3",
                              nullptr, &err),
            0)
      << err;
  auto q3 = load_model(dir + "/q3");
  const auto& m3 = dynamic_cast<const QuipMatrix&>(*q3->blocks[0].lin[6].w);
  EXPECT_EQ(m3.u().seed(), 0u);
  EXPECT_NE(m3.v().seed(), 0u);
  EXPECT_EQ(m3.inner().format(), "int3_row_asym");
  // Bad input: an unsupported grid fails with exit 2 and names the option.
  EXPECT_EQ(test::run_lmpress("quantize --model " + model + " --method quip --bits 5 --calib " + calib +
                                  " --nsamples 2 --seqlen 16 -o " + dir + "/bad",
                              nullptr, &err),
            2);
  EXPECT_NE(err.find("--bits 5"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(dir + "/bad"));
}

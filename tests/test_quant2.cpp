// Issue 8 ("Beyond GPTQ/AWQ"): SqueezeLLM (LUT), BCQ (LUT-GEMM), OWQ (f16 weak columns + GPTQ), each checked
// against an independent computation (double-precision dot products of the dequantized weights, the RTN grid,
// plain GPTQ).
#include <cmath>
#include <random>

#include "kernels/colsplit.h"
#include "kernels/lut.h"
#include "kernels/qint.h"
#include "quant/bcq.h"
#include "quant/gptq.h"
#include "quant/owq.h"
#include "quant/squeezellm.h"
#include "testutil.h"

using namespace lmp;

namespace {

// Heavy-tailed weights (Student-t-like), what LUT codebooks are for.
std::vector<float> heavy_weights(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> w(static_cast<size_t>(n));
  for (auto& v : w) {
    float a = nd(g), b = nd(g), c = nd(g);
    v = 0.05f * a / std::sqrt(0.5f * (b * b + c * c) + 0.05f);
  }
  return w;
}

std::vector<double> positive_sens(int64_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> u(-3, 3);
  std::vector<double> s(static_cast<size_t>(n));
  for (auto& v : s) v = std::exp(u(g));
  return s;
}

// Y (n, rows) = X · Wᵀ in double from dense W.
std::vector<float> ref_matmul(const std::vector<float>& W, int64_t rows, int64_t cols, const float* X, int64_t n) {
  std::vector<float> Y(size_t(n * rows));
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++) {
      double y = 0;
      for (int64_t c = 0; c < cols; c++) y += double(W[size_t(r * cols + c)]) * X[t * cols + c];
      Y[size_t(t * rows + r)] = float(y);
    }
  return Y;
}

double weighted_err(const std::vector<float>& W, const std::vector<float>& Q, const std::vector<double>& s,
                    int64_t cols) {
  double e = 0;
  for (size_t i = 0; i < W.size(); i++) e += s[i % size_t(cols)] * double(W[i] - Q[i]) * (W[i] - Q[i]);
  return e;
}

double sq_err(const std::vector<float>& W, const std::vector<float>& Q) {
  double e = 0;
  for (size_t i = 0; i < W.size(); i++) e += double(W[i] - Q[i]) * (W[i] - Q[i]);
  return e;
}

}  // namespace

TEST(SqueezeLLM, WeightedKmeansObjectiveNeverIncreases) {
  for (int bits : {2, 3, 4}) {
    auto w = heavy_weights(500, 7 + bits);
    auto s = positive_sens(500, 11 + bits);
    std::vector<float> c(size_t(1 << bits));
    std::vector<uint8_t> codes(500);
    std::vector<double> hist;
    weighted_kmeans_1d(w.data(), s.data(), 500, 1 << bits, 100, c.data(), codes.data(), &hist);
    ASSERT_GE(hist.size(), 3u) << bits;
    for (size_t i = 1; i < hist.size(); i++) EXPECT_LE(hist[i], hist[i - 1] * (1 + 1e-12)) << bits << " it " << i;
    EXPECT_LT(hist.back(), 0.9 * hist.front()) << bits;  // clearly better than the RTN start
    // The returned codes/centroids give the last objective (independent recomputation).
    double obj = 0;
    for (int i = 0; i < 500; i++) obj += s[size_t(i)] * std::pow(double(w[size_t(i)]) - c[codes[size_t(i)]], 2);
    EXPECT_NEAR(obj, hist.back(), 1e-9 * hist.back());
  }
}

TEST(SqueezeLLM, BeatsUniformRtnOnWeightedErrorAtEqualBits) {
  const int64_t R = 24, C = 128;
  auto W = heavy_weights(R * C, 3);
  auto s = positive_sens(C, 4);
  for (int bits : {2, 3, 4}) {
    SqueezeOptions o;
    o.bits = bits;
    auto lut = squeezellm_quantize(W.data(), R, C, s, o);
    QuantGrid g;
    g.bits = bits, g.group = 0;
    auto rtn = QIntMatrix::quantize(R, C, W.data(), g);
    double el = weighted_err(W, lut->dense(), s, C), er = weighted_err(W, rtn->dense(), s, C);
    EXPECT_LT(el, 0.8 * er) << bits << " bits: lut " << el << " rtn " << er;
  }
}

TEST(SqueezeLLM, LutKernelMatchesReferenceWithSparseSide) {
  const int64_t R = 37, C = 172;  // ragged: 3-bit codes straddle bytes, 172·3 not a multiple of 8
  auto W = heavy_weights(R * C, 5);
  auto s = positive_sens(C, 6);
  for (int bits : {2, 3, 4}) {
    SqueezeOptions o;
    o.bits = bits;
    o.sparse_frac = 0.01;
    auto m = squeezellm_quantize(W.data(), R, C, s, o);
    ASSERT_NE(m->sparse(), nullptr);
    EXPECT_EQ(m->sparse()->n_params(), int64_t(std::floor(0.01 * R * C)));
    std::vector<float> D = m->dense();
    // Outliers are kept (LUT part + f16 residual): the 1% largest |w|·s are reproduced within f16 rounding.
    int exact = 0;
    for (size_t i = 0; i < W.size(); i++) exact += std::fabs(D[i] - W[i]) <= 1e-3f * std::fabs(W[i]) + 1e-7f;
    EXPECT_GE(exact, int(std::floor(0.01 * R * C)));
    for (int64_t n : {1, 4}) {
      auto X = test::random_vector(size_t(n * C), 9);
      std::vector<float> Y(size_t(n * R)), Yr(size_t(n * R));
      m->matmul(X.data(), n, Y.data());
      m->matmul_ref(X.data(), n, Yr.data());
      auto Yd = ref_matmul(D, R, C, X.data(), n);
      EXPECT_LT(test::max_rel_diff(Y.data(), Yr.data(), Y.size()), 1e-5) << bits;
      EXPECT_LT(test::max_rel_diff(Y.data(), Yd.data(), Y.size()), 1e-5) << bits;
    }
    const double bytes = double(R) * ((C * bits + 7) / 8) + 2.0 * R * (1 << bits) + double(m->sparse()->nbytes());
    EXPECT_NEAR(m->bits_per_weight(), 8 * bytes / double(R * C), 1e-9);
  }
}

TEST(Bcq, ErrorDecreasesWithEachBitPlane) {
  const int64_t R = 16, C = 96;
  auto W = heavy_weights(R * C, 12);
  for (int group : {0, 32}) {
    double prev = INFINITY;
    for (int q = 1; q <= 4; q++) {
      BcqOptions o;
      o.q = q, o.group = group;
      auto m = bcq_quantize(W.data(), R, C, o);
      double e = sq_err(W, m->dense());
      EXPECT_LT(e, 0.8 * prev) << "group " << group << " q " << q;
      prev = e;
    }
  }
  // Alternating refinement beats the greedy-only fit.
  BcqOptions g, a;
  g.q = a.q = 3, g.iters = 0;
  EXPECT_LT(sq_err(W, bcq_quantize(W.data(), R, C, a)->dense()), sq_err(W, bcq_quantize(W.data(), R, C, g)->dense()));
}

TEST(Bcq, LutGemmMatchesReference) {
  const int64_t R = 29, C = 172;  // 172 = 21 bytes + 4 inputs: the last LUT run is zero-padded
  auto W = heavy_weights(R * C, 21);
  for (int group : {0, 32, 64}) {
    BcqOptions o;
    o.q = 3, o.group = group;
    auto m = bcq_quantize(W.data(), R, C, o);
    std::vector<float> D = m->dense();
    for (int64_t n : {1, 3}) {
      auto X = test::random_vector(size_t(n * C), 22);
      std::vector<float> Y(size_t(n * R)), Yr(size_t(n * R));
      m->matmul(X.data(), n, Y.data());
      m->matmul_ref(X.data(), n, Yr.data());
      auto Yd = ref_matmul(D, R, C, X.data(), n);
      EXPECT_LT(test::max_rel_diff(Y.data(), Yr.data(), Y.size()), 1e-5) << group;
      EXPECT_LT(test::max_rel_diff(Y.data(), Yd.data(), Y.size()), 1e-5) << group;
    }
    const double gs = group ? group : C;
    EXPECT_NEAR(m->bits_per_weight(), 3.0 * (C + 4) / C + 3 * 16.0 * std::ceil(C / gs) / C, 1e-9);
  }
}

TEST(Owq, BeatsGptqOnLayerWithOutlierColumns) {
  const int64_t R = 48, C = 128, N = 1024;
  std::mt19937 gen(5);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> X(size_t(N * C)), W(size_t(R * C));
  for (int64_t t = 0; t < N; t++)
    for (int64_t c = 0; c < C; c++) X[size_t(t * C + c)] = nd(gen) * (c == 7 || c == 90 || c == 33 ? 25.0f : 1.0f);
  for (auto& v : W) v = 0.1f * nd(gen);
  std::vector<double> H(size_t(C * C), 0.0);
  for (int64_t t = 0; t < N; t++)
    for (int64_t i = 0; i < C; i++)
      for (int64_t j = 0; j < C; j++) H[size_t(i * C + j)] += 2.0 / N * X[size_t(t * C + i)] * X[size_t(t * C + j)];
  auto out_err = [&](const WeightMatrix& m) {  // ‖X·(W − Ŵ)ᵀ‖² from the stored matrix's own matmul
    std::vector<float> Y(size_t(N * R));
    m.matmul(X.data(), N, Y.data());
    auto Yr = ref_matmul(W, R, C, X.data(), N);
    return sq_err(Yr, Y);
  };
  OwqOptions o;
  o.gptq.grid.bits = 3, o.gptq.grid.group = 32;
  o.weak_frac = 3.0 / C;
  WeightPtr owq = owq_quantize(W.data(), R, C, H, o, "test");
  auto* cs = dynamic_cast<ColumnSplitMatrix*>(owq.get());
  ASSERT_NE(cs, nullptr);
  EXPECT_EQ(cs->kept(), (std::vector<int32_t>{7, 33, 90}));
  auto gptq = gptq_quantize(W.data(), R, C, H, o.gptq, "test").q;
  double eo = out_err(*owq), eg = out_err(*gptq);
  EXPECT_LT(eo, 0.7 * eg) << "owq " << eo << " gptq " << eg;
  EXPECT_LT(owq->bits_per_weight() - gptq->bits_per_weight(), 0.5);
  // Composite kernel == int kernel on the rest + f32 kept columns: compare with its own dequantized weights
  // (the rest runs on int8 activations: tolerance of the int kernels).
  auto Xs = test::random_vector(size_t(2 * C), 8);
  std::vector<float> Y(size_t(2 * R));
  owq->matmul(Xs.data(), 2, Y.data());
  auto Yd = ref_matmul(owq->dense(), R, C, Xs.data(), 2);
  EXPECT_LT(test::max_rel_diff(Y.data(), Yd.data(), Y.size()), 2e-2);
}

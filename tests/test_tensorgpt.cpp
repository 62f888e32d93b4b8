// TensorGPT (lowrank/tensorgpt, kernels/tt_rows): TT-SVD recovers a tensor of exactly low TT-rank; for two modes
// its error is the discarded singular values (computed independently from the eigenvalues of MᵀM), and it
// falls with the rank; the stored rows, lookup, matmul and tied head agree with an independent naive
// contraction of the cores; save/load is bit-exact; the CLI and bad input.
#include <lapacke.h>

#include <cmath>
#include <cstring>

#include "compress/recipe.h"
#include "core/error.h"
#include "kernels/tt_rows.h"
#include "lowrank/tensorgpt.h"
#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

namespace {

// The vector of a tensor train, entry by entry: v[i_1..i_K] = Π_j G_j[:, i_j, :] (row-major multi-index).
std::vector<double> naive_tt(const std::vector<std::vector<double>>& cores, const std::vector<int64_t>& shape,
                             const std::vector<int64_t>& ranks) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> out(static_cast<size_t>(n));
  for (int64_t flat = 0; flat < n; flat++) {
    std::vector<int64_t> idx(shape.size());
    for (int64_t j = int64_t(shape.size()) - 1, rest = flat; j >= 0; j--) idx[size_t(j)] = rest % shape[size_t(j)], rest /= shape[size_t(j)];
    std::vector<double> v = {1.0};
    for (size_t j = 0; j < shape.size(); j++) {
      std::vector<double> u(size_t(ranks[j + 1]), 0.0);
      for (int64_t a = 0; a < ranks[j]; a++)
        for (int64_t b = 0; b < ranks[j + 1]; b++)
          u[size_t(b)] += v[size_t(a)] * cores[j][size_t((a * shape[j] + idx[j]) * ranks[j + 1] + b)];
      v = u;
    }
    out[size_t(flat)] = v[0];
  }
  return out;
}

std::vector<std::vector<double>> to_double_cores(const TTRowsMatrix& w, int64_t r) {
  std::vector<std::vector<double>> c;
  for (size_t j = 0; j < w.shape().size(); j++) c.emplace_back(w.core(j, r), w.core(j, r) + w.core_size(j));
  return c;
}

double sq_dist(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += (a[i] - b[i]) * (a[i] - b[i]);
  return s;
}

std::vector<double> random_doubles(size_t n, uint32_t seed) {
  std::vector<float> f = test::random_vector(n, seed);
  return std::vector<double>(f.begin(), f.end());
}

}  // namespace

TEST(TensorGpt, ExactLowTTRankTensorIsRecovered) {
  const std::vector<int64_t> shape = {4, 3, 5, 2}, ranks = {1, 2, 3, 2, 1};
  std::vector<std::vector<double>> cores;
  for (size_t j = 0; j < shape.size(); j++)
    cores.push_back(random_doubles(size_t(ranks[j] * shape[j] * ranks[j + 1]), 10 + uint32_t(j)));
  std::vector<double> v = naive_tt(cores, shape, ranks);
  double discarded = -1;
  auto got = tt_svd(v.data(), shape, 3, &discarded);
  std::vector<int64_t> prof = tt_rank_profile(shape, 3);
  EXPECT_EQ(prof, (std::vector<int64_t>{1, 3, 3, 2, 1}));  // min(3, left, right)
  std::vector<double> w = naive_tt(got, shape, prof);
  double vv = 0;
  for (double x : v) vv += x * x;
  EXPECT_LT(std::sqrt(sq_dist(v, w) / vv), 1e-5);
  EXPECT_LT(discarded, 1e-10 * vv);
}

TEST(TensorGpt, TwoModeErrorIsTheDiscardedSingularValues) {
  // K = 2: TT-SVD is one truncated SVD of the 8 × 12 reshape, so ‖v − TT(v)‖² = Σ_{i>R} σ_i². The σ² come
  // independently, as the eigenvalues of M Mᵀ (8 × 8, LAPACK dsyev, not the SVD routine).
  const int64_t m = 8, n = 12;
  std::vector<double> v = random_doubles(size_t(m * n), 3);
  std::vector<double> G(size_t(m * m), 0.0);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++)
      for (int64_t c = 0; c < n; c++) G[size_t(i * m + j)] += v[size_t(i * n + c)] * v[size_t(j * n + c)];
  std::vector<double> ev(static_cast<size_t>(m));  // ascending
  ASSERT_EQ(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', int(m), G.data(), int(m), ev.data()), 0);
  double prev = 1e300;
  for (int64_t R = 1; R <= m; R++) {
    auto cores = tt_svd(v.data(), {m, n}, R);
    double err = sq_dist(v, naive_tt(cores, {m, n}, {1, R, 1}));
    double want = 0;
    for (int64_t i = 0; i < m - R; i++) want += ev[size_t(i)];  // the m − R smallest σ²
    EXPECT_NEAR(err, want, 1e-9 * (1 + want)) << "rank " << R;
    EXPECT_LT(err, prev) << "rank " << R;
    prev = err;
  }
  EXPECT_LT(prev, 1e-20);
}

TEST(TensorGpt, ErrorFallsWithRankAndStaysUnderTheBound) {
  const std::vector<int64_t> shape = {4, 4, 4};
  std::vector<double> v = random_doubles(64, 7);
  double prev = 1e300;
  for (int64_t R = 1; R <= 4; R++) {
    double bound = 0;
    auto cores = tt_svd(v.data(), shape, R, &bound);
    double err = sq_dist(v, naive_tt(cores, shape, tt_rank_profile(shape, R)));
    EXPECT_LE(err, bound * (1 + 1e-9) + 1e-20) << "rank " << R;
    EXPECT_LT(err, prev) << "rank " << R;
    prev = err;
  }
  EXPECT_LT(prev, 1e-20);  // rank 4 is full for 4 × 4 × 4
}

TEST(TensorGpt, LookupMatmulAndDenseAgreeWithTheNaiveContraction) {
  const int64_t V = 37, C = 24;
  std::vector<float> E = test::random_vector(size_t(V * C), 5);
  auto w = tensorgpt_compress(E.data(), V, C, {2, 3, 4}, 2);
  EXPECT_EQ(w->ranks(), (std::vector<int64_t>{1, 2, 2, 1}));
  EXPECT_EQ(w->n_params(), V * (1 * 2 * 2 + 2 * 3 * 2 + 2 * 4 * 1));
  EXPECT_EQ(w->nbytes(), size_t(w->n_params()) * 4);
  std::vector<float> D = w->dense(), row(static_cast<size_t>(C));
  for (int64_t r = 0; r < V; r++) {
    std::vector<double> want = naive_tt(to_double_cores(*w, r), w->shape(), w->ranks());
    w->dequantize_row(r, row.data());
    for (int64_t c = 0; c < C; c++) {
      EXPECT_NEAR(row[size_t(c)], want[size_t(c)], 1e-5) << r << "," << c;
      EXPECT_EQ(row[size_t(c)], D[size_t(r * C + c)]) << r << "," << c;
    }
  }
  for (int64_t n : {1, 7}) {
    std::vector<float> X = test::random_vector(size_t(n * C), 9), Y(size_t(n * V)), Yr(Y.size());
    w->matmul(X.data(), n, Y.data());
    tt_rows_matmul_ref(*w, X.data(), n, Yr.data());
    EXPECT_LT(test::max_rel_diff(Y.data(), Yr.data(), Y.size()), 1e-5) << "n " << n;
  }
}

TEST(TensorGpt, TiedModelRunsFromTheCoresAndRoundTrips) {
  std::string dir = test::temp_dir("tgpt"), out = dir + "/out";
  test::TinySpec spec;
  spec.tied = true;  // hidden 32 → default shape 4, 4, 2
  test::write_tiny_model(dir + "/in", spec);
  auto m = load_model(dir + "/in");
  const size_t dense_bytes = m->n_bytes();
  run_recipe(*m, parse_recipe({{"stages", {{{"modifier", "tensorgpt"}, {"tt_rank", 2}}}}}, "t"), false);
  ASSERT_TRUE(m->embed_w);
  EXPECT_TRUE(m->embed.empty());
  const auto* tt = dynamic_cast<const TTRowsMatrix*>(m->embed_w.get());
  ASSERT_NE(tt, nullptr);
  EXPECT_EQ(tt->shape(), (std::vector<int64_t>{4, 4, 2}));
  const int64_t per_token = 1 * 4 * 2 + 2 * 4 * 2 + 2 * 2 * 1;
  EXPECT_EQ(dense_bytes - m->n_bytes(), size_t(64 * 32 - 64 * per_token) * 4);
  EXPECT_EQ(m->lm_head.w->format(), "tt_rows");

  // Independent model: the same weights with the reconstructed table stored densely (f32, tied head borrows it).
  auto ref = load_model(dir + "/in");
  ref->embed = m->embed_w->dense();
  ref->retie_head();
  const std::vector<int> ids = {1, 5, 9, 63, 0, 17};
  std::vector<float> la(size_t(ids.size()) * 64), lb(la.size());
  {
    KVCache ca(m->cfg, 16), cb(ref->cfg, 16);
    Forward(*m).tokens(ids.data(), int(ids.size()), ca, la.data(), false);
    Forward(*ref).tokens(ids.data(), int(ids.size()), cb, lb.data(), false);
  }
  EXPECT_LT(test::max_rel_diff(la.data(), lb.data(), la.size()), 1e-5);

  save_model(*m, out);
  auto m2 = load_model(out);
  ASSERT_TRUE(m2->embed_w);
  EXPECT_EQ(m2->n_bytes(), m->n_bytes());
  auto d1 = m->embed_w->dense(), d2 = m2->embed_w->dense();
  EXPECT_EQ(0, std::memcmp(d1.data(), d2.data(), d1.size() * 4));
  std::vector<float> lc(la.size());
  KVCache cc(m2->cfg, 16);
  Forward(*m2).tokens(ids.data(), int(ids.size()), cc, lc.data(), false);
  EXPECT_EQ(0, std::memcmp(la.data(), lc.data(), la.size() * 4));
}

TEST(TensorGpt, CliAndBadInput) {
  std::vector<float> E = test::random_vector(8 * 24, 1);
  EXPECT_THROW(tensorgpt_compress(E.data(), 8, 24, {4, 4}, 2), Error);  // 16 ≠ 24
  EXPECT_THROW(tensorgpt_compress(E.data(), 8, 24, {4, 6}, 0), Error);
  EXPECT_THROW(make_modifier({{"modifier", "tensorgpt"}}), Error);
  EXPECT_THROW(make_modifier({{"modifier", "tensorgpt"}, {"tt_rank", 2}, {"tt_shape", "4x4"}}), Error);
  EXPECT_EQ(default_tt_shape(64), (std::vector<int64_t>{4, 4, 4}));
  EXPECT_EQ(default_tt_shape(768), (std::vector<int64_t>{4, 4, 4, 4, 3}));
  EXPECT_EQ(default_tt_shape(172), (std::vector<int64_t>{4, 43}));

  std::string dir = test::temp_dir("tgpt-cli"), out, err;
  test::write_tiny_model(dir + "/in", {});
  EXPECT_EQ(test::run_lmpress("factorize --model " + dir + "/in --method tensorgpt --tt-rank 2 --tt-shape 8,4 -o " +
                                  dir + "/out --json", &out, &err), 0) << err;
  auto m = load_model(dir + "/out");
  ASSERT_TRUE(m->embed_w);
  EXPECT_EQ(dynamic_cast<const TTRowsMatrix&>(*m->embed_w).shape(), (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(test::run_lmpress("factorize --model " + dir + "/in --method tensorgpt --tt-rank 2 --tt-shape 5,5 -o " +
                                  dir + "/bad", nullptr, &err), 2);
  EXPECT_NE(err.find("tt_shape [5, 5] multiplies to 25"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("factorize --model " + dir + "/in --method tensorgpt -o " + dir + "/bad", nullptr, &err), 2);
  // Methods that rewrite the table densely refuse a compressed one with a clear message.
  try {
    m->require_dense_embed("export --format gguf");
    ADD_FAILURE() << "a tt_rows embedding passed require_dense_embed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stored as tt_rows"), std::string::npos) << e.what();
  }
}

// Quantizer grid (hand-computed cases, an independent re-computation) and one table-driven test walking
// every registered group-wise integer format: packing, the grid's error bound, SIMD == scalar reference
// for every ISA this CPU runs, the int8-activation bound against float math, and a bit-exact save/load.
#include <gtest/gtest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/half.h"
#include "io/safetensors.h"
#include "kernels/qint.h"
#include "kernels/weight_registry.h"
#include "quant/grid.h"
#include "test_helpers_qint.h"

using namespace lmp;
using testq::max_rel_err;

// ---------------------------------------------------------------------------------------------------
// Grid

TEST(QuantGrid, HandComputedAsym) {
  QuantGrid g{.bits = 2, .sym = false, .group = 0};
  float w[] = {-1.0f, 0.0f, 0.5f, 2.0f};  // lo −1, hi 2: scale 3/3 = 1, zero round(1) = 1
  GroupParams p = find_params(w, 4, g);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero, 1);
  // 0.5 / 1 = 0.5 ties to even (0): code 1, not 2.
  int want[] = {0, 1, 1, 3};
  for (int i = 0; i < 4; i++) EXPECT_EQ(quantize_value(w[i], p, 2), want[i]) << i;
  EXPECT_EQ(dequant(3, p), 2.0f);

  QuantGrid g4{.bits = 4, .sym = false, .group = 0};
  float v[] = {0.0f, 1.5f, 3.0f, 7.5f};  // lo 0, hi 7.5: scale 0.5, zero 0
  p = find_params(v, 4, g4);
  EXPECT_EQ(p.scale, 0.5f);
  EXPECT_EQ(p.zero, 0);
  int want4[] = {0, 3, 6, 15};
  for (int i = 0; i < 4; i++) EXPECT_EQ(quantize_value(v[i], p, 4), want4[i]);

  float z[] = {0, 0, 0};  // GPTQ: lo −1, hi 1 → scale 2/15 (rounded up to f16), zero round(7.49..) = 7
  p = find_params(z, 3, g4);
  EXPECT_EQ(p.zero, 7);
  EXPECT_EQ(dequant(quantize_value(0.0f, p, 4), p), 0.0f);
}

TEST(QuantGrid, HandComputedSymAndF16RoundUp) {
  QuantGrid g{.bits = 4, .sym = true, .group = 0};
  float w[] = {-3.0f, 1.5f, 0.0f};  // scale 2·3/15 = 0.4 → f16 0x3666 = 0.39990234 < 0.4 → 0x3667
  GroupParams p = find_params(w, 3, g);
  EXPECT_EQ(p.scale, 0.400146484375f);
  EXPECT_EQ(p.zero, 8);
  EXPECT_EQ(quantize_value(-3.0f, p, 4), 1);   // round(−7.497) = −7
  EXPECT_EQ(quantize_value(1.5f, p, 4), 12);   // round(3.749) = 4
  EXPECT_EQ(quantize_value(0.0f, p, 4), 8);
  EXPECT_EQ(quantize_value(100.0f, p, 4), 15);  // clamped
}

// Independent re-computation in double: exact min-max scale, the smallest f16 ≥ it found by scanning
// f16 bit patterns, half-to-even rounding written out.
static double round_half_even(double x) {
  double f = std::floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

TEST(QuantGrid, MatchesIndependentComputation) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0, 1);
  for (int bits : {2, 3, 4, 8})
    for (bool sym : {false, true})
      for (int trial = 0; trial < 50; trial++) {
        int n = 1 + trial % 40;
        std::vector<float> w(static_cast<size_t>(n));
        float amp = std::exp2(float(trial % 9) - 4);
        for (auto& x : w) x = amp * nd(rng);
        if (trial % 5 == 0) w[0] = amp * 0.5f * float(trial % 3);  // ties and exact values
        QuantGrid g{.bits = bits, .sym = sym, .group = 0};
        const int maxq = g.maxq();
        double lo = 0, hi = 0;
        for (float x : w) lo = std::min(lo, double(x)), hi = std::max(hi, double(x));
        if (lo == 0 && hi == 0) lo = -1, hi = 1;  // GPTQ's all-zero rule
        double exact = sym ? 2 * std::max(-lo, hi) / maxq : (hi - lo) / maxq;
        uint16_t h = 1;
        while (f16_to_f32(h) < exact) h++;
        double s = f16_to_f32(h);
        int zero = sym ? (maxq + 1) / 2 : int(std::clamp(round_half_even(-lo / s), 0.0, double(maxq)));
        GroupParams p = find_params(w.data(), n, g);
        ASSERT_EQ(double(p.scale), s) << bits << sym << trial;
        ASSERT_EQ(p.zero, zero);
        for (float x : w) {
          int q = int(std::clamp(round_half_even(double(float(x / float(s)))) + zero, 0.0, double(maxq)));
          ASSERT_EQ(quantize_value(x, p, bits), q) << x;
          EXPECT_LE(std::fabs(double(x) - dequant(q, p)), s / 2 * (1 + 1e-6));
        }
      }
}

TEST(QuantGrid, MseClippingNeverWorse) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> w(128);
  for (auto& x : w) x = nd(rng);
  w[5] = 12.0f;  // an outlier that min–max spends the grid on
  QuantGrid g{.bits = 3, .sym = false, .group = 128};
  QuantGrid gm = g;
  gm.mse = true;
  auto err = [&](GroupParams p) {
    double e = 0;
    for (float x : w) e += std::pow(x - dequant(quantize_value(x, p, 3), p), 2);
    return e;
  };
  GroupParams a = find_params(w.data(), 128, g), b = find_params(w.data(), 128, gm);
  EXPECT_LT(b.scale, a.scale);
  EXPECT_LT(err(b), err(a));
}

// ---------------------------------------------------------------------------------------------------
// Every registered group-wise integer format

struct Shape {
  int64_t rows, cols;
};

static std::vector<QIntIsa> isas_to_test() {
  std::vector<QIntIsa> v = {QIntIsa::Avx2};
  if (qint_best_isa() == QIntIsa::Avx512) v.push_back(QIntIsa::Avx512);
  return v;
}

static QuantGrid grid_of(const std::string& name) {
  for (const QuantGrid& g : QIntMatrix::all_grids())
    if (QIntMatrix::format_name(g) == name) return g;
  ADD_FAILURE() << "registered format " << name << " has no grid";
  return {};
}

static void check_format(const QuantGrid& grid, Shape sh, uint32_t seed) {
  const int64_t rows = sh.rows, cols = sh.cols;
  std::vector<float> W = testq::random_matrix(rows, cols, seed);
  auto m = QIntMatrix::quantize(rows, cols, W.data(), grid);
  const int64_t ng = m->ngroups(), gs = grid.group_size(cols);

  // Exact size: codes + f16 scales + u8 zeros (asym).
  size_t want_bytes = size_t(rows * ((cols + 63) / 64) * 8 * grid.bits + rows * ng * 2 + (grid.sym ? 0 : rows * ng));
  EXPECT_EQ(m->nbytes(), want_bytes);

  // Grid bound per element, and dequantize() agrees with codes + params.
  std::vector<float> Wd = m->dense();
  std::vector<uint8_t> q(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++) m->unpack_row(r, q.data() + r * cols);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) {
      GroupParams p = m->params(r, c / gs);
      size_t i = size_t(r * cols + c);
      ASSERT_EQ(Wd[i], dequant(q[i], p));
      ASSERT_LE(std::fabs(W[i] - Wd[i]), p.scale / 2 * (1 + 1e-6)) << r << "," << c;
    }

  // Pack → unpack → pack is bit-exact (codes and side data).
  std::vector<float> scales(size_t(rows * ng));
  std::vector<uint8_t> zeros(size_t(rows * ng));
  for (int64_t i = 0; i < rows * ng; i++) scales[i] = m->params(i / ng, i % ng).scale, zeros[i] = uint8_t(m->params(i / ng, i % ng).zero);
  auto m2 = QIntMatrix::from_codes(rows, cols, grid, q.data(), scales.data(), grid.sym ? nullptr : zeros.data());
  ASSERT_EQ(0, std::memcmp(m->codes(), m2->codes(), size_t(rows * m->row_bytes())));
  ASSERT_EQ(0, std::memcmp(m->scales(), m2->scales(), size_t(rows * ng) * 2));

  // SIMD == scalar reference (same int8-activation math), and the activation-quantization bound.
  for (int64_t n : {1, 3, 6}) {
    std::vector<float> X = testq::random_matrix(n, cols, seed + 1000 + uint32_t(n));
    std::vector<float> Yref(size_t(n * rows)), Y(size_t(n * rows));
    qint_matmul_ref(*m, X.data(), n, Yref.data());
    for (QIntIsa isa : isas_to_test()) {
      qint_force_isa(isa);
      std::fill(Y.begin(), Y.end(), NAN);
      qint_matmul_int8(*m, X.data(), n, Y.data());
      EXPECT_LE(max_rel_err(Y.data(), Yref.data(), Y.size()), 1e-5) << isa_name(isa) << " n=" << n;
    }
    qint_force_isa(qint_best_isa());
    std::vector<float> Ym(Y.size()), Yk(Y.size());  // matmul() is the int8 path at every n
    m->matmul(X.data(), n, Ym.data());
    qint_matmul_int8(*m, X.data(), n, Yk.data());
    EXPECT_EQ(0, std::memcmp(Ym.data(), Yk.data(), Ym.size() * 4));
    std::vector<float> Yf = testq::matmul_double(X.data(), Wd.data(), n, rows, cols);
    for (int64_t t = 0; t < n; t++)
      for (int64_t r = 0; r < rows; r++) {
        double bound = 0, mag = 0;
        for (int64_t k = 0; k * 32 < cols; k++) {
          double d = 0, sw = 0;
          for (int64_t c = k * 32; c < std::min(cols, k * 32 + 32); c++)
            d = std::max(d, std::fabs(double(X[t * cols + c]))), sw += std::fabs(Wd[r * cols + c]);
          bound += d / 127 / 2 * sw;
          mag += d * sw;
        }
        size_t i = size_t(t * rows + r);
        ASSERT_LE(std::fabs(double(Yref[i]) - Yf[i]), bound + 1e-6 * mag) << t << "," << r;
      }
    // The sgemm prefill path is exact float math on Ŵ.
    std::vector<float> Ys(size_t(n * rows));
    qint_matmul_sgemm(*m, X.data(), n, Ys.data());
    EXPECT_LE(max_rel_err(Ys.data(), Yf.data(), Ys.size()), 1e-5);
  }

  // save → load through the registry is bit-exact.
  std::string path = fmt::format("{}/lmp_test_qint_{}_{}.safetensors", ::testing::TempDir(), getpid(), seed);
  SafeTensorsWriter wr;
  nlohmann::json spec = m->save(wr, "layer.q");
  wr.write(path);
  {
    testq::FileSource src(path);
    WeightPtr back = load_weight(src, "layer.q", spec);
    ASSERT_EQ(back->format(), m->format());
    ASSERT_EQ(back->nbytes(), m->nbytes());
    auto* qb = dynamic_cast<const QIntMatrix*>(back.get());
    ASSERT_NE(qb, nullptr);
    ASSERT_EQ(0, std::memcmp(qb->codes(), m->codes(), size_t(rows * m->row_bytes())));
    ASSERT_EQ(0, std::memcmp(qb->scales(), m->scales(), size_t(rows * ng) * 2));
    if (!grid.sym) {
      ASSERT_EQ(0, std::memcmp(qb->zeros(), m->zeros(), size_t(rows * ng)));
    }
    std::vector<float> Wb = back->dense();
    ASSERT_EQ(0, std::memcmp(Wb.data(), Wd.data(), Wd.size() * 4));
  }
  std::remove(path.c_str());
}

TEST(QInt, EveryRegisteredFormat) {
  const Shape shapes[] = {{1, 172}, {7, 100}, {33, 64}, {5, 300}, {37, 1000}, {3, 520}, {6, 4200}};  // 4200: chunks of 2048
  int formats = 0;
  for (const WeightFormatInfo& f : weight_formats()) {
    if (f.load != load_qint) continue;
    formats++;
    QuantGrid grid = grid_of(f.name);
    EXPECT_EQ(QIntMatrix::format_name(grid), f.name);
    // Block layout round trip on random codes.
    std::mt19937 rng(static_cast<uint32_t>(formats));
    uint8_t codes[QK], back[QK], blk[QK];
    for (auto& c : codes) c = uint8_t(rng() & uint32_t(grid.maxq()));
    qblock_pack(grid.bits, codes, blk);
    qblock_unpack(grid.bits, blk, back);
    ASSERT_EQ(0, std::memcmp(codes, back, QK)) << f.name;
    for (size_t s = 0; s < std::size(shapes); s++) {
      SCOPED_TRACE(fmt::format("{} {}x{}", f.name, shapes[s].rows, shapes[s].cols));
      check_format(grid, shapes[s], uint32_t(formats * 100 + s));
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_EQ(formats, int(QIntMatrix::all_grids().size()));
  EXPECT_EQ(formats, 40);
}

// matmul from the library entry point, with the thread team active (rows·cols·n above the threading
// threshold), against the scalar reference: every worker must see the caller's quantized activations.
TEST(QInt, ThreadedMatmulEqualsReference) {
  omp_set_num_threads(2);
  const int64_t rows = 256, cols = 512;
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> W(size_t(rows * cols)), X(size_t(5 * cols));
  for (auto& w : W) w = d(rng);
  for (auto& x : X) x = d(rng);
  for (int bits : {2, 4, 8}) {
    QuantGrid g;
    g.bits = bits;
    g.group = 128;
    auto m = QIntMatrix::quantize(rows, cols, W.data(), g);
    for (int64_t n : {1, 5}) {
      std::vector<float> Y(size_t(n * rows)), R(size_t(n * rows));
      m->matmul(X.data(), n, Y.data());
      qint_matmul_ref(*m, X.data(), n, R.data());
      EXPECT_LE(max_rel_err(Y.data(), R.data(), Y.size()), 1e-5) << bits << " bits, n " << n;
    }
  }
}

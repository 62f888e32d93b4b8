// Sparse stored forms (kernels/sparse.h), one table-driven walk over every format: the stored values equal
// the masked weights they were built from, the fast GEMV and the scalar reference equal the dense reference
// on those values (random shapes, ragged chunks and bitmap words included), n > 1 equals a double GEMM,
// save/load is a bit-exact round trip through the weight registry; then malformed inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "kernels/qint.h"
#include "kernels/sparse.h"
#include "kernels/weight_registry.h"
#include "test_helpers_qint.h"
#include "testutil.h"

using namespace lmp;

namespace {

// W with a random N:M pattern (m > 0) or random unstructured sparsity p (m == 0).
std::vector<float> masked_random(int64_t rows, int64_t cols, int n, int m, double p, uint32_t seed) {
  std::vector<float> W = testq::random_matrix(rows, cols, seed);
  std::mt19937 rng(seed + 7);
  if (m > 0) {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t g = 0; g < cols; g += m) {
        std::vector<int> pos(static_cast<size_t>(m));
        for (int j = 0; j < m; j++) pos[size_t(j)] = j;
        std::shuffle(pos.begin(), pos.end(), rng);
        for (int j = n; j < m; j++) W[size_t(r * cols + g + pos[size_t(j)])] = 0;
      }
  } else {
    std::uniform_real_distribution<double> u(0, 1);
    for (float& w : W)
      if (u(rng) < p) w = 0;
  }
  return W;
}

std::vector<float> round_f16(std::vector<float> W) {
  for (float& w : W) w = f16_to_f32(f32_to_f16(w));
  return W;
}

struct FormatCase {
  std::string name;
  int n, m;       // pattern of the test weights (m == 0: unstructured)
  double p;       // unstructured sparsity
  // Builds the stored matrix from masked W and returns the dense values it must hold.
  std::function<WeightPtr(int64_t, int64_t, const std::vector<float>&, std::vector<float>*)> build;
};

std::vector<FormatCase> cases() {
  auto bitmap = [](SparseValues v) {
    return [v](int64_t r, int64_t c, const std::vector<float>& W, std::vector<float>* want) -> WeightPtr {
      *want = v == SparseValues::F16 ? round_f16(W) : W;
      return SparseBitmap::from_dense(r, c, W.data(), v);
    };
  };
  auto nm = [](int n, int m, SparseValues v) {
    return [=](int64_t r, int64_t c, const std::vector<float>& W, std::vector<float>* want) -> WeightPtr {
      *want = v == SparseValues::F16 ? round_f16(W) : W;
      return SparseNM::from_dense(r, c, W.data(), n, m, v);
    };
  };
  // Independent expectation for int4: QIntMatrix's RTN of the same masked W (pruned zeros code to exactly 0).
  auto nmq4 = [](int n, int m, QuantGrid g) {
    return [=](int64_t r, int64_t c, const std::vector<float>& W, std::vector<float>* want) -> WeightPtr {
      *want = QIntMatrix::quantize(r, c, W.data(), g)->dense();
      return SparseNMQ4::quantize(r, c, W.data(), n, m, g);
    };
  };
  return {
      {"bitmap_f32_50", 0, 0, 0.5, bitmap(SparseValues::F32)},
      {"bitmap_f32_90", 0, 0, 0.9, bitmap(SparseValues::F32)},
      {"bitmap_f16_70", 0, 0, 0.7, bitmap(SparseValues::F16)},
      {"nm2_4_f32", 2, 4, 0, nm(2, 4, SparseValues::F32)},
      {"nm2_4_f16", 2, 4, 0, nm(2, 4, SparseValues::F16)},
      {"nm4_8_f32", 4, 8, 0, nm(4, 8, SparseValues::F32)},
      {"nm4_8_f16", 4, 8, 0, nm(4, 8, SparseValues::F16)},
      {"nm2_4_int4_g128_asym", 2, 4, 0, nmq4(2, 4, QuantGrid{.bits = 4, .sym = false, .group = 128})},
      {"nm2_4_int4_g32_sym", 2, 4, 0, nmq4(2, 4, QuantGrid{.bits = 4, .sym = true, .group = 32})},
      {"nm4_8_int4_row_asym", 4, 8, 0, nmq4(4, 8, QuantGrid{.bits = 4, .sym = false, .group = 0})},
  };
}

// rows × cols: tiny (all tail), ragged 16-value chunks and bitmap words, a multi-tile matrix.
const std::vector<std::pair<int64_t, int64_t>> kShapes = {{3, 24}, {17, 200}, {33, 136}, {300, 64}, {40, 512}};


}  // namespace

TEST(SparseFormats, EveryFormatMatchesDenseReference) {
  int seed = 1;
  for (const FormatCase& fc : cases()) {
    for (auto [rows, cols] : kShapes) {
      SCOPED_TRACE(fc.name + " " + std::to_string(rows) + "x" + std::to_string(cols));
      std::vector<float> W = masked_random(rows, cols, fc.n, fc.m, fc.p, uint32_t(seed++)), want;
      WeightPtr w = fc.build(rows, cols, W, &want);
      auto* sp = dynamic_cast<SparseMatrixBase*>(w.get());
      ASSERT_NE(sp, nullptr);
      // Stored values: exactly the masked weights.
      std::vector<float> got = w->dense();
      ASSERT_EQ(0, std::memcmp(got.data(), want.data(), got.size() * 4));
      // GEMV: fast and reference against the double dense reference on the same values.
      std::vector<float> x = test::random_vector(size_t(cols), uint32_t(seed)), y_ref(static_cast<size_t>(rows)), y(static_cast<size_t>(rows));
      gemv_f32_ref(want.data(), x.data(), y_ref.data(), rows, cols);
      sp->gemv_ref(x.data(), y.data());
      EXPECT_LT(test::max_rel_diff(y.data(), y_ref.data(), y.size()), 1e-6);
      w->matmul(x.data(), 1, y.data());
      EXPECT_LT(test::max_rel_diff(y.data(), y_ref.data(), y.size()), 2e-6);
      // n > 1: decoded tiles + sgemm.
      const int64_t n = 5;
      std::vector<float> X = test::random_vector(size_t(n * cols), uint32_t(seed + 1000)), Y(size_t(n * rows));
      std::vector<float> Y_ref = testq::matmul_double(X.data(), want.data(), n, rows, cols);
      w->matmul(X.data(), n, Y.data());
      EXPECT_LT(test::max_rel_diff(Y.data(), Y_ref.data(), Y.size()), 2e-6);
      // Save/load through the registry: same format, size and values, bit for bit.
      WeightPtr back = testq::round_trip(*w, "sparse_" + fc.name);
      EXPECT_EQ(back->format(), w->format());
      EXPECT_EQ(back->nbytes(), w->nbytes());
      std::vector<float> got2 = back->dense();
      EXPECT_EQ(0, std::memcmp(got2.data(), got.data(), got.size() * 4));
    }
  }
}

TEST(SparseFormats, SimdAndReferenceAgreeWhenForced) {
  if (!sparse_simd_available()) GTEST_SKIP() << "no AVX-512 on this CPU: only the reference runs";
  std::vector<float> W = masked_random(64, 256, 0, 0, 0.7, 3), want;
  auto w = SparseBitmap::from_dense(64, 256, W.data(), SparseValues::F32);
  std::vector<float> x = test::random_vector(256, 4), a(64), b(64);
  w->gemv(x.data(), a.data());
  sparse_force_reference(true);
  w->gemv(x.data(), b.data());
  sparse_force_reference(false);
  EXPECT_LT(test::max_rel_diff(a.data(), b.data(), 64), 2e-6);
}

TEST(SparseFormats, SizesAreWhatTheHeaderSays) {
  std::vector<float> W = masked_random(64, 4096, 2, 4, 0, 5);
  EXPECT_EQ(SparseNM::from_dense(64, 4096, W.data(), 2, 4, SparseValues::F32)->nbytes(), size_t(64 * (2048 * 4 + 512)));
  EXPECT_EQ(SparseNM::from_dense(64, 4096, W.data(), 2, 4, SparseValues::F16)->nbytes(), size_t(64 * (2048 * 2 + 512)));
  auto bm = SparseBitmap::from_dense(64, 4096, W.data(), SparseValues::F32);
  EXPECT_EQ(bm->nbytes(), size_t(64 * 512 + 65 * 8 + 64 * 2048 * 4));
  EXPECT_NEAR(bm->bits_per_weight(), 1 + 16 + 65.0 * 64 / (64 * 4096), 1e-9);  // bitmap + values + (rows + 1) row pointers
}

TEST(SparseFormats, BadInputsThrow) {
  std::vector<float> W = masked_random(4, 16, 2, 4, 0, 6);
  W[0] = W[1] = W[2] = 1.0f;  // three nonzeros in the first group of four
  EXPECT_THROW(SparseNM::from_dense(4, 16, W.data(), 2, 4, SparseValues::F32, "L"), Error);
  std::vector<float> V(4 * 18, 0.0f);
  EXPECT_THROW(SparseNM::from_dense(4, 18, V.data(), 2, 4, SparseValues::F32), Error);   // 18 % 4 != 0
  EXPECT_THROW(SparseNM::from_dense(4, 16, V.data(), 1, 4, SparseValues::F32), Error);   // no 1:4 format
  QuantGrid g{.bits = 4, .sym = false, .group = 48};
  std::vector<float> Z = masked_random(4, 96, 2, 4, 0, 7);
  EXPECT_THROW(SparseNMQ4::quantize(4, 96, Z.data(), 2, 4, g), Error);  // group not a multiple of 32
  try {
    SparseNM::from_dense(4, 16, W.data(), 2, 4, SparseValues::F32, "model.layers.0.mlp.up_proj");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos) << e.what();
  }
  // A stored file whose tensor shape disagrees with the spec.
  auto w = SparseNM::from_dense(4, 16, masked_random(4, 16, 2, 4, 0, 8).data(), 2, 4, SparseValues::F32);
  std::string dir = test::temp_dir("sparse_bad");
  SafeTensorsWriter wr;
  nlohmann::json spec = w->save(wr, "layer");
  wr.write(dir + "/w.safetensors");
  testq::FileSource src(dir + "/w.safetensors");
  spec["cols"] = 32;
  EXPECT_THROW(load_weight(src, "layer", spec), Error);
  spec["cols"] = 16;
  spec["n"] = 3;
  EXPECT_THROW(load_weight(src, "layer", spec), Error);
}

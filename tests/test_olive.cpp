// OliVe outlier-victim pairs (kernels/olive.h, quant/olive.h): the encoding round-trips, normal pairs stay
// plain int4, the victim is 0, the error beats int4 with clipped outliers when outliers are planted, the
// table-driven kernel equals the nibble-by-nibble reference, and the stage's output is stored and reloads.
#include <cmath>
#include <random>

#include "calib/pipeline.h"
#include "compress/recipe.h"
#include "kernels/olive.h"
#include "kernels/qint.h"
#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

TEST(Olive, PairEncodingRoundTrips) {
  const auto& t = olive_pair_table();
  for (int b = 0; b < 256; b++) {
    auto p = olive_decode_pair(uint8_t(b));
    EXPECT_EQ(t[size_t(2 * b)], p[0]);
    EXPECT_EQ(t[size_t(2 * b + 1)], p[1]);
  }
  float err;
  for (int a = -7; a <= 7; a++)  // normal pairs: exact, plain int4 nibbles
    for (int b = -7; b <= 7; b++) {
      uint8_t code = olive_encode_pair(float(a), float(b), &err);
      EXPECT_EQ(err, 0.0f);
      EXPECT_EQ(code, uint8_t((a & 15) | (b & 15) << 4));
      auto p = olive_decode_pair(code);
      EXPECT_EQ(p[0], float(a));
      EXPECT_EQ(p[1], float(b));
    }
  // outlier high, victim low: the victim reads 0, its nibble is the identifier, the outlier the nearest abfloat
  uint8_t c = olive_encode_pair(0.4f, -41.0f, &err);
  EXPECT_EQ(c & 15, 0x8);
  auto p = olive_decode_pair(c);
  EXPECT_EQ(p[0], 0.0f);
  EXPECT_EQ(p[1], -48.0f);
  EXPECT_NEAR(err, 0.4f * 0.4f + 7.0f * 7.0f, 1e-4);
  // outlier low
  c = olive_encode_pair(13.0f, 2.0f, &err);
  p = olive_decode_pair(c);
  EXPECT_EQ(p[0], 12.0f);
  EXPECT_EQ(p[1], 0.0f);
  EXPECT_EQ(c >> 4, 0x8);
  // −8 in the low nibble would be ambiguous (byte 0x88): a clamped normal pair instead
  c = olive_encode_pair(-8.2f, 1.0f, &err);
  EXPECT_NE(c & 15, 0x8);
  EXPECT_NE(c >> 4, 0x8);
  EXPECT_EQ(olive_decode_pair(c)[0], -7.0f);
}

namespace {

// Per-group symmetric int4 in [−7, 7] with the best of the same scale candidates (outliers clipped).
double int4_clipped_error(const std::vector<float>& W, int64_t rows, int64_t cols, int64_t gs) {
  double tot = 0;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c0 = 0; c0 < cols; c0 += gs) {
      float amax = 0;
      for (int64_t c = c0; c < c0 + gs; c++) amax = std::max(amax, std::fabs(W[size_t(r * cols + c)]));
      double best = INFINITY;
      for (float v : {7.f, 9.f, 12.f, 16.f, 24.f, 32.f, 48.f, 64.f, 96.f}) {
        const float s = amax / v;
        double e = 0;
        for (int64_t c = c0; c < c0 + gs; c++) {
          const float w = W[size_t(r * cols + c)], q = std::clamp(std::nearbyint(w / s), -7.0f, 7.0f) * s;
          e += double(w - q) * (w - q);
        }
        best = std::min(best, e);
      }
      tot += best;
    }
  return tot;
}

}  // namespace

TEST(Olive, BeatsClippedInt4WithPlantedOutliersAndKeepsNormalPairs) {
  const int64_t rows = 64, cols = 256, gs = 128;
  auto W = test::random_vector(size_t(rows * cols), 21);
  std::mt19937 g(3);
  for (int i = 0; i < int(rows * cols) / 100; i++) W[g() % W.size()] *= 25.0f;  // 1% outliers
  auto m = OliveMatrix::quantize(rows, cols, W.data(), int(gs));
  std::vector<float> D(W.size());
  m->dequantize(D.data());
  double e_ovp = 0;
  int victims = 0, normal_checked = 0;
  for (size_t i = 0; i < W.size(); i++) e_ovp += double(W[i] - D[i]) * (W[i] - D[i]);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c += 2) {
      const uint8_t b = m->byte(r, c / 2);
      const float s = m->scale(r, c / gs), a = W[size_t(r * cols + c)] / s, bb = W[size_t(r * cols + c + 1)] / s;
      if ((b & 15) == 0x8 || (b >> 4) == 0x8) {  // OVP pair: victim exactly 0
        victims++;
        EXPECT_EQ((b & 15) == 0x8 ? D[size_t(r * cols + c)] : D[size_t(r * cols + c + 1)], 0.0f);
      } else if (std::fabs(a) <= 7 && std::fabs(bb) <= 7) {  // normal pair: plain rounding
        normal_checked++;
        EXPECT_EQ(D[size_t(r * cols + c)], std::nearbyint(a) * s);
        EXPECT_EQ(D[size_t(r * cols + c + 1)], std::nearbyint(bb) * s);
      }
    }
  EXPECT_GT(victims, int(rows * cols) / 200);
  EXPECT_GT(normal_checked, int(rows * cols) / 4);
  const double e_int4 = int4_clipped_error(W, rows, cols, gs);
  EXPECT_LT(e_ovp, 0.8 * e_int4) << "OVP " << e_ovp << " int4 clipped " << e_int4;
  // and below the library's asymmetric int4 g128 with its MSE clipping search
  auto q = QIntMatrix::quantize(rows, cols, W.data(), QuantGrid{.bits = 4, .sym = false, .group = 128, .mse = true});
  auto Dq = q->dense();
  double e_rtn = 0;
  for (size_t i = 0; i < W.size(); i++) e_rtn += double(W[i] - Dq[i]) * (W[i] - Dq[i]);
  EXPECT_LT(e_ovp, e_rtn) << "OVP " << e_ovp << " RTN asym mse " << e_rtn;
}

TEST(Olive, KernelEqualsReferenceAndStageReloads) {
  const int64_t rows = 48, cols = 172;  // 172: ragged last group
  auto W = test::random_vector(size_t(rows * cols), 5);
  for (int gs : {32, 0}) {
    auto m = OliveMatrix::quantize(rows, cols, W.data(), gs);
    for (int64_t n : {1, 9}) {
      auto X = test::random_vector(size_t(n * cols), 9);
      std::vector<float> y(size_t(n * rows)), ref(size_t(n * rows));
      m->matmul(X.data(), n, y.data());
      olive_matmul_ref(*m, X.data(), n, ref.data());
      EXPECT_LT(test::max_rel_diff(y.data(), ref.data(), y.size()), 1e-5) << gs << " " << n;
    }
  }
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.max_pos = 64;
  std::string dir = test::temp_dir("olive"), out = test::temp_dir("olive_out");
  test::write_tiny_model(dir, s);
  auto model = load_model(dir);
  auto mod = make_modifier({{"modifier", "olive"}, {"group", 32}});
  PipelineOptions po;
  po.progress = false;
  run_data_free(*model, {mod.get()}, po);
  EXPECT_EQ(model->blocks[0].at(LinearKind::Q).w->format(), "olive4_g32");
  save_model(*model, out);
  auto r = load_model(out);
  EXPECT_EQ(r->blocks[1].at(LinearKind::Down).w->format(), "olive4_g32");
  EXPECT_EQ(r->n_bytes(), model->n_bytes());
  auto run = [](const Model& mm) {
    Forward fw(mm);
    KVCache cache(mm.cfg, 16);
    std::vector<int> ids(16);
    for (int t = 0; t < 16; t++) ids[size_t(t)] = (t * 7 + 3) % mm.cfg.vocab;
    std::vector<float> lg(size_t(16) * mm.cfg.vocab);
    fw.tokens(ids.data(), 16, cache, lg.data());
    return lg;
  };
  auto a = run(*model), b = run(*r);
  EXPECT_EQ(test::max_abs_diff(a.data(), b.data(), a.size()), 0.0);
}

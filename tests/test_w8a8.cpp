// Weight-activation quantization: the W8A8 int8 × int8 kernels (AVX-512 VNNI == AVX2 == scalar int64 loop,
// exactly, over ragged shapes and token counts), the FP8/FP4 codecs on their exhaustive code tables,
// LLM.int8()'s decomposition, SmoothQuant's function-preserving smoothing and its error reduction on
// outlier activations, save/load round trips, argument errors, and (with ../shared) the real model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <random>

#include "calib/pipeline.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "io/safetensors.h"
#include "kernels/lowbit_float.h"
#include "kernels/w8a8.h"
#include "kernels/w8a8_outlier.h"
#include "kernels/weight_registry.h"
#include "model/forward.h"
#include "quant/llm_int8.h"
#include "quant/smoothquant.h"
#include "test_helpers_qint.h"
#include "testutil.h"

using namespace lmp;
using testq::max_rel_err;

namespace {

// Activations with a few outlier columns (×outlier), as LLM activations have.
std::vector<float> outlier_acts(int64_t n, int64_t cols, uint32_t seed, float outlier = 30.0f) {
  std::vector<float> X = test::random_vector(size_t(n * cols), seed);
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 3; c < cols; c += 37) X[size_t(t * cols + c)] *= outlier;
  return X;
}

std::vector<QIntIsa> isas() {
  std::vector<QIntIsa> v = {QIntIsa::Avx2};
  if (qint_best_isa() == QIntIsa::Avx512) v.push_back(QIntIsa::Avx512);
  return v;
}

struct IsaGuard {
  QIntIsa saved = qint_isa();
  ~IsaGuard() { qint_force_isa(saved); }
};

// Saves m, loads it back through the registry.
WeightPtr round_trip(const WeightMatrix& m, const std::string& tag) {
  std::string dir = test::temp_dir("w8a8_rt_" + tag), path = dir + "/w.safetensors";
  SafeTensorsWriter w;
  nlohmann::json spec = m.save(w, "layer");
  w.write(path);
  testq::FileSource src(path);
  return load_weight(src, "layer", spec);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// W8A8 kernels

TEST(W8A8Kernel, IntegersExactAcrossIsas) {
  const std::pair<int64_t, int64_t> shapes[] = {{16, 64}, {33, 172}, {172, 64}, {40, 300}, {7, 5}};
  for (auto [rows, cols] : shapes)
    for (int group : W8A8Matrix::all_groups())
      for (int64_t n : {1, 3, 17, 64}) {
        SCOPED_TRACE(fmt::format("{}x{} group {} n {}", rows, cols, group, n));
        auto W = testq::random_matrix(rows, cols, uint32_t(rows * 7 + cols));
        auto m = W8A8Matrix::quantize(rows, cols, W.data(), group);
        auto X = outlier_acts(n, cols, uint32_t(n + group));
        const size_t ni = size_t(n * m->ngroups() * rows);
        std::vector<int32_t> ref(ni), got(ni);
        w8a8_int(*m, X.data(), n, QIntIsa::Scalar, ref.data());
        for (QIntIsa isa : isas()) {
          std::fill(got.begin(), got.end(), -1);
          w8a8_int(*m, X.data(), n, isa, got.data());
          ASSERT_EQ(got, ref) << isa_name(isa);
        }
      }
}

TEST(W8A8Kernel, MatmulMatchesReferenceAndFloatBound) {
  IsaGuard guard;
  for (int group : {0, 64}) {
    const int64_t rows = 72, cols = 172, n = 19;
    auto W = testq::random_matrix(rows, cols, 5);
    auto m = W8A8Matrix::quantize(rows, cols, W.data(), group);
    auto X = outlier_acts(n, cols, 9);
    std::vector<float> ref(size_t(n * rows)), Y(ref.size());
    w8a8_matmul_ref(*m, X.data(), n, ref.data());
    for (QIntIsa isa : isas()) {
      qint_force_isa(isa);
      m->matmul(X.data(), n, Y.data());
      EXPECT_LT(max_rel_err(Y.data(), ref.data(), Y.size()), 1e-6) << isa_name(isa) << " group " << group;
    }
    // Against float math on the dequantized weights: |x − d·xq| ≤ d/2, so |y − ŵ·x| ≤ d/2 · Σ|ŵ|.
    std::vector<float> D = m->dense();
    auto exact = testq::matmul_double(X.data(), D.data(), n, rows, cols);
    for (int64_t t = 0; t < n; t++) {
      float amax = 0;
      for (int64_t c = 0; c < cols; c++) amax = std::max(amax, std::fabs(X[size_t(t * cols + c)]));
      for (int64_t r = 0; r < rows; r++) {
        double l1 = 0;
        for (int64_t c = 0; c < cols; c++) l1 += std::fabs(D[size_t(r * cols + c)]);
        EXPECT_LE(std::fabs(ref[size_t(t * rows + r)] - exact[size_t(t * rows + r)]), amax / 127 / 2 * l1 * 1.001 + 1e-4);
      }
    }
  }
}

TEST(W8A8Format, WeightBoundAndSaveLoadBitExact) {
  const int64_t rows = 37, cols = 172, n = 5;
  auto W = testq::random_matrix(rows, cols, 11);
  auto X = test::random_vector(size_t(n * cols), 12);
  for (int group : W8A8Matrix::all_groups()) {
    auto m = W8A8Matrix::quantize(rows, cols, W.data(), group);
    std::vector<float> D = m->dense();
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) {
        float s = m->scale(r, c / m->group_size());
        ASSERT_LE(std::fabs(W[size_t(r * cols + c)] - D[size_t(r * cols + c)]), s / 2 * 1.0001f);
        ASSERT_LE(std::abs(m->code(r, c)), 127);
      }
    WeightPtr back = round_trip(*m, m->format());
    EXPECT_EQ(back->format(), m->format());
    EXPECT_EQ(back->nbytes(), m->nbytes());
    EXPECT_EQ(back->dense(), D);
    std::vector<float> y1(size_t(n * rows)), y2(y1.size());
    m->matmul(X.data(), n, y1.data());
    back->matmul(X.data(), n, y2.data());
    EXPECT_EQ(y1, y2);
  }
}

// ---------------------------------------------------------------------------------------------------
// FP8 / FP4 codecs

struct LowFloatCase {
  LowFloat f;
  int finite;  // finite codes (both signs)
  float max;
  std::vector<std::pair<uint8_t, float>> known;  // hand-computed decodes
};

TEST(LowFloat, ExhaustiveTables) {
  const float inf = INFINITY;
  const LowFloatCase cases[] = {
      {LowFloat::E4M3, 254, 448.0f, {{0x01, std::ldexp(1.0f, -9)}, {0x07, 7 * std::ldexp(1.0f, -9)}, {0x08, std::ldexp(1.0f, -6)},
                                     {0x38, 1.0f}, {0x3C, 1.5f}, {0x7E, 448.0f}, {0xB8, -1.0f}, {0xFE, -448.0f}}},
      {LowFloat::E5M2, 248, 57344.0f, {{0x01, std::ldexp(1.0f, -16)}, {0x04, std::ldexp(1.0f, -14)}, {0x3C, 1.0f},
                                       {0x3D, 1.25f}, {0x7B, 57344.0f}, {0x7C, inf}, {0xFC, -inf}}},
      {LowFloat::E2M1, 16, 6.0f, {{0, 0.0f}, {1, 0.5f}, {2, 1.0f}, {3, 1.5f}, {4, 2.0f}, {5, 3.0f}, {6, 4.0f}, {7, 6.0f},
                                   {0xF, -6.0f}, {0x9, -0.5f}}},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(lowfloat_spec(k.f).name);
    const int ncodes = 1 << lowfloat_spec(k.f).bits();
    EXPECT_EQ(lowfloat_max(k.f), k.max);
    for (auto [c, v] : k.known) EXPECT_EQ(lowfloat_decode(k.f, c), v) << int(c);
    int finite = 0;
    for (int c = 0; c < ncodes; c++) {
      float v = lowfloat_decode(k.f, uint8_t(c));
      finite += std::isfinite(v);
      float back = lowfloat_decode(k.f, lowfloat_encode(k.f, v));
      if (std::isnan(v)) {
        EXPECT_TRUE(std::isnan(back)) << c;
      } else {
        EXPECT_EQ(back, v) << c;
      }
      if (std::isfinite(v) && v != 0) {
        EXPECT_EQ(lowfloat_encode(k.f, v), c) << c;  // ±0 aside, codes are unique
      }
    }
    EXPECT_EQ(finite, k.finite);
    // Midpoints between neighbours tie to the even code; a hair off rounds to the nearer one.
    for (int c = 0; c + 1 < ncodes / 2; c++) {
      float a = lowfloat_decode(k.f, uint8_t(c)), b = lowfloat_decode(k.f, uint8_t(c + 1));
      if (!std::isfinite(b)) break;
      float mid = (a + b) / 2;
      int even = c % 2 == 0 ? c : c + 1;
      EXPECT_EQ(lowfloat_encode(k.f, mid), even) << "between codes " << c << " and " << c + 1;
      EXPECT_EQ(lowfloat_encode(k.f, -mid), even | (ncodes / 2)) << c;
      EXPECT_EQ(lowfloat_encode(k.f, std::nextafter(mid, 0.0f)), c) << c;
      EXPECT_EQ(lowfloat_encode(k.f, std::nextafter(mid, inf)), c + 1) << c;
    }
    // Saturation: finite overflow → ±max.
    EXPECT_EQ(lowfloat_decode(k.f, lowfloat_encode(k.f, k.max * 3)), k.max);
    EXPECT_EQ(lowfloat_decode(k.f, lowfloat_encode(k.f, -k.max * 1.01f)), -k.max);
  }
  EXPECT_EQ(lowfloat_decode(LowFloat::E5M2, lowfloat_encode(LowFloat::E5M2, INFINITY)), INFINITY);
  EXPECT_EQ(lowfloat_decode(LowFloat::E4M3, lowfloat_encode(LowFloat::E4M3, INFINITY)), 448.0f);  // no inf in E4M3
  EXPECT_TRUE(std::isnan(lowfloat_decode(LowFloat::E4M3, 0x7F)));
  EXPECT_TRUE(std::isnan(lowfloat_decode(LowFloat::E5M2, 0x7D)));
}

TEST(LowFloat, MatrixKernelsAndRoundTrip) {
  const int64_t rows = 29, cols = 172;
  auto W = testq::random_matrix(rows, cols, 21);
  for (auto [f, group] : LowFloatMatrix::all_formats()) {
    SCOPED_TRACE(LowFloatMatrix::format_name(f, group));
    auto m = LowFloatMatrix::quantize(rows, cols, W.data(), f, group);
    for (int64_t n : {1, 3, 20}) {
      auto X = test::random_vector(size_t(n * cols), uint32_t(n));
      std::vector<float> ref(size_t(n * rows)), Y(ref.size());
      lowfloat_matmul_ref(*m, X.data(), n, ref.data());
      m->matmul(X.data(), n, Y.data());
      EXPECT_LT(max_rel_err(Y.data(), ref.data(), Y.size()), 1e-5) << n;
    }
    // Relative weight error of the format: E2M1 half-spacing at the top is 1/6 of max, FP8 far finer.
    std::vector<float> D = m->dense();
    double worst = 0;
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++)
        worst = std::max(worst, double(std::fabs(W[size_t(r * cols + c)] - D[size_t(r * cols + c)]) /
                                    (m->scale(r, c / m->group_size()) * lowfloat_max(f))));
    EXPECT_LE(worst, f == LowFloat::E2M1 ? 1.0 / 6 + 1e-6 : f == LowFloat::E5M2 ? 0.125 + 1e-6 : 0.0625 + 1e-6);
    WeightPtr back = round_trip(*m, m->format());
    EXPECT_EQ(back->format(), m->format());
    EXPECT_EQ(back->dense(), D);
  }
}

// ---------------------------------------------------------------------------------------------------
// LLM.int8()

TEST(LlmInt8, OutlierColumnsBeatPlainW8A8AndRoundTrip) {
  const int64_t rows = 64, cols = 172, n = 16;
  auto W = testq::random_matrix(rows, cols, 31);
  auto X = outlier_acts(n, cols, 32, 60.0f);
  std::vector<float> amax(size_t(cols), 0.0f);
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 0; c < cols; c++) amax[size_t(c)] = std::max(amax[size_t(c)], std::fabs(X[size_t(t * cols + c)]));
  auto idx = llm_int8_outliers(amax, 6.0, 0.0);
  EXPECT_EQ(idx, (std::vector<int32_t>{3, 40, 77, 114, 151}));
  EXPECT_EQ(llm_int8_outliers(amax, 6.0, 0.02).size(), 4u);  // ceil(0.02 · 172)
  auto mixed = OutlierW8A8Matrix::quantize(rows, cols, W.data(), idx);
  auto plain = W8A8Matrix::quantize(rows, cols, W.data(), 0);
  auto exact = testq::matmul_double(X.data(), W.data(), n, rows, cols);
  std::vector<float> y1(exact.size()), y2(exact.size());
  mixed->matmul(X.data(), n, y1.data());
  plain->matmul(X.data(), n, y2.data());
  double e_mixed = test::rel_rms_error(y1.data(), exact.data(), y1.size());
  double e_plain = test::rel_rms_error(y2.data(), exact.data(), y2.size());
  EXPECT_LT(e_mixed, 0.5 * e_plain) << e_mixed << " vs " << e_plain;
  // Outlier columns are kept as f16.
  std::vector<float> D = mixed->dense();
  for (int32_t c : idx) EXPECT_EQ(D[size_t(5 * cols + c)], f16_to_f32(f32_to_f16(W[size_t(5 * cols + c)])));
  WeightPtr back = round_trip(*mixed, "llm_int8");
  EXPECT_EQ(back->format(), "llm_int8");
  EXPECT_EQ(back->nbytes(), mixed->nbytes());
  std::vector<float> y3(y1.size());
  back->matmul(X.data(), n, y3.data());
  EXPECT_EQ(y3, y1);
}

// ---------------------------------------------------------------------------------------------------
// SmoothQuant on a tiny random model with outlier channels

namespace {

// A tiny model whose residual stream has a few large channels (scaled embedding columns).
std::unique_ptr<Model> outlier_model(const std::string& tag, int kv_heads) {
  std::string dir = test::temp_dir("w8a8_" + tag);
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = kv_heads, s.ffn = 96, s.vocab = 64, s.layers = 2;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  for (int v = 0; v < m->cfg.vocab; v++)
    for (int j : {5, 21, 50}) m->embed[size_t(v * m->cfg.hidden + j)] *= 25.0f;
  return m;
}

Samples random_samples(int n, int L, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  Samples s(static_cast<size_t>(n), std::vector<int>(static_cast<size_t>(L)));
  for (auto& row : s)
    for (auto& t : row) t = int(rng() % uint32_t(vocab));
  return s;
}

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids) {
  Forward fw(m);
  KVCache cache(m.cfg, int(ids.size()));
  std::vector<float> lg(ids.size() * size_t(m.cfg.vocab));
  fw.tokens(ids.data(), int(ids.size()), cache, lg.data());
  return lg;
}

// Block 0's output on the embedded ids.
std::vector<float> block0(const Model& m, const std::vector<int>& ids) {
  Forward fw(m);
  std::vector<float> x(ids.size() * size_t(m.cfg.hidden));
  fw.embed(ids.data(), int(ids.size()), x.data());
  KVCache cache(m.cfg, int(ids.size()));
  fw.block(0, x.data(), int(ids.size()), cache);
  return x;
}

void apply_stage(Model& m, const nlohmann::json& stage, const Samples& samples) {
  auto mod = make_modifier(stage);
  PipelineOptions po;
  po.progress = false;
  if (mod->needs_calibration()) run_sequential(m, samples, {mod.get()}, po);
  else run_data_free(m, {mod.get()}, po);
}

}  // namespace

TEST(SmoothQuant, SmoothingAlonePreservesLogits) {
  for (int kv : {4, 2}) {  // without GQA o_proj is smoothed through v_proj rows; with GQA it is skipped
    auto m = outlier_model(fmt::format("smooth{}", kv), kv);
    auto ids = random_samples(1, 24, m->cfg.vocab, 3)[0];
    auto before = logits_of(*m, ids);
    apply_stage(*m, {{"modifier", "smoothquant"}, {"alpha", 0.6}, {"quantize", false}},
                random_samples(4, 32, m->cfg.vocab, 4));
    auto after = logits_of(*m, ids);
    EXPECT_LT(test::max_abs_diff(after.data(), before.data(), after.size()),
              1e-4 * std::max(1.0, test::max_abs(before.data(), before.size())))
        << "kv heads " << kv;
    // The scales moved range out of the activations: the attention norm shrank on the outlier channels.
    EXPECT_LT(std::fabs(m->blocks[0].attn_norm[5]), 0.5f * std::fabs(m->blocks[0].attn_norm[4])) << kv;
  }
}

TEST(SmoothQuant, LowerBlockErrorThanPlainW8A8) {
  auto ref = outlier_model("sq_ref", 4);
  auto ids = random_samples(1, 48, ref->cfg.vocab, 5)[0];
  auto calib = random_samples(8, 48, ref->cfg.vocab, 6);
  auto y_ref = block0(*ref, ids);
  auto err_of = [&](const nlohmann::json& stage, const std::string& tag) {
    auto m = outlier_model(tag, 4);
    apply_stage(*m, stage, calib);
    auto y = block0(*m, ids);
    // Compare the block's update (output − input): the residual would hide the error.
    auto x = block0(*ref, ids);  // == y_ref
    std::vector<float> emb(ids.size() * size_t(ref->cfg.hidden));
    Forward(*ref).embed(ids.data(), int(ids.size()), emb.data());
    for (size_t i = 0; i < y.size(); i++) y[i] -= emb[i], x[i] -= emb[i];
    return test::rel_rms_error(y.data(), x.data(), y.size());
  };
  double e_w8 = err_of({{"modifier", "w8a8"}}, "sq_w8");
  double e_sq = err_of({{"modifier", "smoothquant"}, {"alpha", 0.5}}, "sq_sq");
  double e_search = err_of({{"modifier", "smoothquant"}, {"alpha_search", true}}, "sq_search");
  double e_int8 = err_of({{"modifier", "llm_int8"}, {"threshold", 6.0}}, "sq_int8");
  EXPECT_LT(e_sq, e_w8);
  EXPECT_LE(e_search, e_sq * 1.05);
  EXPECT_LT(e_int8, e_w8);
  std::printf("block-0 update rel. error: w8a8 %.4f, smoothquant 0.5 %.4f, searched %.4f, llm_int8 %.4f\n", e_w8,
              e_sq, e_search, e_int8);
}

TEST(WeightActQuant, BadArgumentsAreClearErrors) {
  auto msg = [](const nlohmann::json& st) {
    try {
      make_modifier(st);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg({{"modifier", "smoothquant"}, {"alpha", 1.5}}).find("alpha = 1.5 is outside [0, 1]"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "smoothquant"}, {"alpha", -0.1}}).find("alpha"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "w8a8"}, {"bits", 4}}).find("--bits 4"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "w8a8"}, {"act_bits", 4}}).find("--act-bits 4"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "w8a8"}, {"group", 48}}).find("--group 48"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "fp8"}, {"fp", "e2m1"}}).find("fp8: fp"), std::string::npos);
  EXPECT_NE(msg({{"modifier", "llm_int8"}, {"outlier_frac", 0.9}}).find("outlier_frac"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------
// The real model (one test: every method, a prefix of the eval set)

TEST(RealModel, WeightActivationPplOrdering) {
  std::string model = LMP_REQUIRE_SHARED("models/stories260K");
  std::string calib = LMP_REQUIRE_SHARED("data/tinystories/calib.txt");
  std::string eval = LMP_REQUIRE_SHARED("data/tinystories/eval.txt");
  auto base = load_model(model);
  auto ids = tokenize_file(base->tokenizer(), eval, TextFormat::Docs);
  PplOptions po;
  po.ctx = 512, po.max_windows = 48, po.progress = false;
  const double f32 = perplexity(*base, ids, po).ppl;
  auto ppl_of = [&](const nlohmann::json& stage) {
    auto m = load_model(model);
    Recipe r = parse_recipe({{"stages", {stage}},
                             {"calibration", {{"path", calib}, {"format", "docs"}, {"nsamples", 16}, {"seqlen", 512}}}},
                            "test");
    run_recipe(*m, r, false);
    return perplexity(*m, ids, po).ppl;
  };
  double w8 = ppl_of({{"modifier", "w8a8"}}), sq = ppl_of({{"modifier", "smoothquant"}, {"alpha", 0.5}});
  double i8 = ppl_of({{"modifier", "llm_int8"}, {"outlier_frac", 0.05}});
  double e4 = ppl_of({{"modifier", "fp8"}, {"group", 0}}), f4 = ppl_of({{"modifier", "fp4"}, {"group", 32}});
  std::printf("stories260K ppl (48 windows): f32 %.4f w8a8 %.4f smoothquant %.4f llm_int8 %.4f fp8 %.4f fp4 %.4f\n",
              f32, w8, sq, i8, e4, f4);
  for (double p : {w8, sq, i8, e4}) EXPECT_LT(p, f32 * 1.05);  // 8-bit costs a few percent at most
  EXPECT_LT(i8, w8 * 1.001);                                   // keeping the largest columns in f16 never hurts
  EXPECT_GT(f4, e4);                                           // 4-bit floats lose more than 8-bit ones
}

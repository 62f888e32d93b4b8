// FPTQ W4A8 (kernels/w4a8.h, quant/fptq.h) and MoFQ (quant/mofq.h): the per-token int4 × int8 kernels equal
// the scalar reference and an independent per-token computation; log equalization folds exactly; the
// stored W4A8 model reloads and runs the same; MoFQ keeps, per Linear, the lower-error format.
#include <cmath>
#include <random>

#include "calib/pipeline.h"
#include "compress/recipe.h"
#include "kernels/dense.h"
#include "kernels/lowbit_float.h"
#include "kernels/w4a8.h"
#include "model/forward.h"
#include "quant/fp8.h"
#include "quant/fptq.h"
#include "quant/smoothquant.h"
#include "testutil.h"

using namespace lmp;

namespace {

std::vector<float> logits_of(const Model& m, int T) {
  Forward fw(m);
  KVCache cache(m.cfg, T);
  std::vector<int> ids(static_cast<size_t>(T));
  for (int t = 0; t < T; t++) ids[size_t(t)] = (t * 29 + 5) % m.cfg.vocab;
  std::vector<float> logits(size_t(T) * m.cfg.vocab);
  fw.tokens(ids.data(), T, cache, logits.data());
  return logits;
}

void apply_stage(Model& m, const nlohmann::json& stage, int n = 4, int L = 32) {
  Samples calib(static_cast<size_t>(n), std::vector<int>(static_cast<size_t>(L)));
  for (int i = 0; i < n; i++)
    for (int t = 0; t < L; t++) calib[size_t(i)][size_t(t)] = (i * 13 + t * 7 + 1) % m.cfg.vocab;
  auto mod = make_modifier(stage);
  PipelineOptions po;
  po.progress = false;
  if (mod->needs_calibration()) run_sequential(m, calib, {mod.get()}, po);
  else run_data_free(m, {mod.get()}, po);
}

}  // namespace

// Kernels (AVX2, AVX-512 VNNI when present) against the scalar reference, and the reference against an
// independent computation: d_t = max|x_t| / 127 for the whole token, y = d_t · Σ_c ŵ[r][c] · xq_t[c].
// The activations vary by 100× between 32-blocks, so a per-block scale would give different numbers.
TEST(W4A8, KernelsEqualReferenceAndPerTokenMath) {
  const int64_t rows = 40, cols = 200;
  auto W = test::random_vector(size_t(rows * cols), 3);
  std::vector<QIntIsa> isas = {QIntIsa::Avx2};
  if (qint_best_isa() == QIntIsa::Avx512) isas.push_back(QIntIsa::Avx512);
  for (int group : {32, 128, 0})
    for (bool sym : {false, true}) {
      QuantGrid g{.bits = 4, .sym = sym, .group = group};
      W4A8Matrix m(QIntMatrix::quantize(rows, cols, W.data(), g));
      std::vector<float> What(size_t(rows * cols));
      m.dequantize(What.data());
      for (int64_t n : {1, 3, 9}) {
        auto X = test::random_vector(size_t(n * cols), 11 + uint32_t(n));
        for (int64_t t = 0; t < n; t++)
          for (int64_t c = 0; c < cols; c++) X[size_t(t * cols + c)] *= (c / 32) % 2 ? 0.01f : 1.0f;
        std::vector<float> ref(size_t(n * rows)), indep(size_t(n * rows));
        w4a8_matmul(m, X.data(), n, QIntIsa::Scalar, ref.data());
        for (int64_t t = 0; t < n; t++) {
          const float* x = &X[size_t(t * cols)];
          float amax = 0;
          for (int64_t c = 0; c < cols; c++) amax = std::max(amax, std::fabs(x[c]));
          const float d = amax / 127.0f;
          for (int64_t r = 0; r < rows; r++) {
            double s = 0;
            for (int64_t c = 0; c < cols; c++)
              s += double(What[size_t(r * cols + c)]) * std::clamp(std::nearbyint(x[c] / d), -127.0f, 127.0f);
            indep[size_t(t * rows + r)] = float(double(d) * s);
          }
        }
        EXPECT_LT(test::max_rel_diff(ref.data(), indep.data(), ref.size()), 1e-5) << group << sym << n;
        for (QIntIsa isa : isas) {
          std::vector<float> y(size_t(n * rows));
          w4a8_matmul(m, X.data(), n, isa, y.data());
          EXPECT_LT(test::max_rel_diff(y.data(), ref.data(), y.size()), 1e-5) << isa_name(isa) << group << sym << n;
        }
      }
    }
}

// LAE scales folded into the block (RMSNorm weights, v/up rows) leave the float model's function unchanged.
TEST(W4A8, LogEqualizationFoldIsOutputEquivalent) {
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 4, s.head_dim = 16, s.max_pos = 64;  // no GQA: o_proj folds too
  std::string dir = test::temp_dir("lae");
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  auto before = logits_of(*m, 24);
  EXPECT_FLOAT_EQ(lae_scales(std::vector<float>{6.0f}.data(), 1)[0], float(6.0 / 3.0));
  int folded = 0;
  for (int l = 0; l < s.layers; l++) {
    Block& b = m->blocks[size_t(l)];
    for (SmoothSite site : {SmoothSite::Attn, SmoothSite::Mlp, SmoothSite::O, SmoothSite::Down}) {
      ASSERT_TRUE(smoothable(b, site));
      const int64_t C = b.at(site_kind(site)).in();
      auto amax = test::random_vector(size_t(C), uint32_t(7 + l * 4 + int(site)), 20.0f);
      for (auto& a : amax) a = std::fabs(a) + 0.1f;
      fold_smoothing(b, site, lae_scales(amax.data(), C));
      folded++;
    }
  }
  EXPECT_EQ(folded, 4 * s.layers);
  auto after = logits_of(*m, 24);
  EXPECT_LT(test::rel_rms_error(after.data(), before.data(), after.size()), 1e-5);
  // and the weights really changed (a no-op fold would pass the line above)
  auto fresh = load_model(dir);
  EXPECT_GT(test::max_abs_diff(m->blocks[0].attn_norm.data(), fresh->blocks[0].attn_norm.data(), 64), 1e-3);
}

// The fptq stage stores W4A8 Linears; the saved model reloads to the same formats and the same logits.
TEST(W4A8, FptqStageStoresAndReloads) {
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.ffn = 128, s.max_pos = 64;
  std::string dir = test::temp_dir("fptq"), out = test::temp_dir("fptq_out");
  test::write_tiny_model(dir, s);
  auto ref = load_model(dir);
  auto m = load_model(dir);
  apply_stage(*m, {{"modifier", "fptq"}, {"bits", 4}, {"group", 32}, {"lae_threshold", 0.0}});
  for (const auto& b : m->blocks)
    for (const auto& l : b.lin) EXPECT_EQ(l.w->format(), "w4a8_int4_g32_asym");
  auto y = logits_of(*m, 24), y0 = logits_of(*ref, 24);
  EXPECT_LT(test::rel_rms_error(y.data(), y0.data(), y.size()), 0.2);
  save_model(*m, out);
  auto r = load_model(out);
  EXPECT_EQ(r->blocks[1].at(LinearKind::Down).w->format(), "w4a8_int4_g32_asym");
  EXPECT_EQ(r->n_bytes(), m->n_bytes());
  auto yr = logits_of(*r, 24);
  EXPECT_EQ(test::max_abs_diff(yr.data(), y.data(), y.size()), 0.0);
}

// MoFQ: uniform weights favour the uniform int4 grid, heavy-tailed ones FP4 E2M1; each Linear ends in the
// format whose error (computed here independently) is the lower.
TEST(Mofq, PicksTheLowerErrorFormatPerLinear) {
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 4, s.head_dim = 16, s.layers = 1;
  std::string dir = test::temp_dir("mofq");
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> uni(-1, 1);
  std::student_t_distribution<float> heavy(2.0f);
  auto fill = [&](LinearKind k, bool heavy_tail) {
    Linear& l = m->blocks[0].at(k);
    std::vector<float> W(size_t(l.out() * l.in()));
    for (auto& w : W) w = heavy_tail ? heavy(gen) : uni(gen);
    l.w = std::make_unique<DenseF32>(l.out(), l.in(), std::move(W));
  };
  fill(LinearKind::Q, false);
  fill(LinearKind::K, true);
  std::vector<std::vector<float>> orig;
  for (const auto& l : m->blocks[0].lin) orig.push_back(l.w->dense());
  apply_stage(*m, {{"modifier", "mofq"}, {"bits", 4}, {"group", 64}});
  EXPECT_EQ(m->blocks[0].at(LinearKind::Q).w->format(), "int4_g64_asym");
  EXPECT_EQ(m->blocks[0].at(LinearKind::K).w->format(), LowFloatMatrix::format_name(LowFloat::E2M1, 64));
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const Linear& l = m->blocks[0].lin[size_t(k)];
    const std::vector<float>& W = orig[size_t(k)];
    auto err = [&](const WeightMatrix& q) {
      auto d = q.dense();
      double e = 0;
      for (size_t i = 0; i < W.size(); i++) e += double(W[i] - d[i]) * (W[i] - d[i]);
      return e;
    };
    auto qi = QIntMatrix::quantize(l.out(), l.in(), W.data(), QuantGrid{.bits = 4, .sym = false, .group = 64});
    auto qf = quantize_lowfloat(W.data(), l.out(), l.in(), LowFloat::E2M1, 64, true);
    EXPECT_DOUBLE_EQ(err(*l.w), std::min(err(*qi), err(*qf.q))) << kLinearNames[size_t(k)];
  }
}

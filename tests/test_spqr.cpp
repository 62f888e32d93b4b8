// SpQR (issue 8): quantized statistics, OBS-chosen outliers, exact stored size, kernel == reference, errors.
// Independent computations: statistics re-derived from the stored f16 tensors and unpacked codes, the layer
// output error from double-precision products of the dense weights, the stored size from the file itself.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "compress/recipe.h"
#include "core/mmap_file.h"
#include "kernels/qint.h"
#include "kernels/spqr_format.h"
#include "kernels/weight_registry.h"
#include "quant/gptq.h"
#include "quant/spqr.h"
#include "test_helpers_qint.h"
#include "testutil.h"

using namespace lmp;

namespace {

// A layer whose inputs have correlated channels of unequal power, weights Gaussian plus a few large ones.
struct Layer {
  int64_t R, C, N;
  std::vector<float> W, X;
  std::vector<double> H;
};

Layer make_layer(int64_t R, int64_t C, int64_t N, uint32_t seed, double outlier_frac) {
  Layer L{R, C, N, {}, {}, std::vector<double>(size_t(C * C), 0.0)};
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0, 1);
  std::uniform_real_distribution<float> u(0, 1);
  L.W.resize(size_t(R * C));
  for (auto& v : L.W) v = 0.05f * nd(g) * (u(g) < outlier_frac ? 12.0f : 1.0f);
  std::vector<float> power(static_cast<size_t>(C));
  for (auto& p : power) p = std::exp(1.5f * nd(g));
  L.X.resize(size_t(N * C));
  for (int64_t t = 0; t < N; t++) {
    float common = nd(g);
    for (int64_t c = 0; c < C; c++) L.X[size_t(t * C + c)] = power[size_t(c)] * (nd(g) + 0.5f * common);
  }
  for (int64_t t = 0; t < N; t++)
    for (int64_t i = 0; i < C; i++)
      for (int64_t j = 0; j < C; j++)
        L.H[size_t(i * C + j)] += 2.0 / double(N) * L.X[size_t(t * C + i)] * L.X[size_t(t * C + j)];
  return L;
}

// ‖X·Wᵀ − X·Ŵᵀ‖² in double from the dense weights.
double output_error(const Layer& L, const std::vector<float>& Wq) {
  auto Y = testq::matmul_double(L.X.data(), L.W.data(), L.N, L.R, L.C);
  auto Yq = testq::matmul_double(L.X.data(), Wq.data(), L.N, L.R, L.C);
  double e = 0;
  for (size_t i = 0; i < Y.size(); i++) e += double(Y[i] - Yq[i]) * (Y[i] - Yq[i]);
  return e;
}

WeightPtr round_trip(const WeightMatrix& w, const std::string& tag, size_t* stored_bytes = nullptr) {
  std::string dir = test::temp_dir("spqr_rt_" + tag);
  SafeTensorsWriter wr;
  nlohmann::json spec = w.save(wr, "layer");
  wr.write(dir + "/w.safetensors");
  if (stored_bytes) {
    SafeTensorsFile f(dir + "/w.safetensors");
    *stored_bytes = 0;
    for (const auto& [name, t] : f.tensors()) *stored_bytes += t.nbytes;
  }
  testq::FileSource src(dir + "/w.safetensors");
  return load_weight(src, "layer", spec);
}

// A random SpqrMatrix straight from its parts: every code value, random statistics and outliers.
std::unique_ptr<SpqrMatrix> random_spqr(int64_t R, int64_t C, const SpqrLayout& l, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> code(0, (1 << l.bits) - 1), scode(0, (1 << l.stat_bits) - 1);
  std::uniform_real_distribution<float> u(0, 1);
  const int64_t ng = l.ngroups(C);
  std::vector<uint8_t> q(size_t(R * C)), sc(size_t(R * ng)), zc(size_t(R * ng));
  for (auto& v : q) v = uint8_t(code(g));
  for (auto& v : sc) v = uint8_t(scode(g));
  for (auto& v : zc) v = uint8_t(scode(g));
  std::vector<f16_t> stats(size_t(l.nrowgroups(R) * ng * 4));
  for (size_t i = 0; i < stats.size(); i += 4) {
    stats[i] = f32_to_f16(0.001f + 0.01f * u(g));     // scale step
    stats[i + 1] = f32_to_f16(0.01f + 0.05f * u(g));  // scale base
    stats[i + 2] = f32_to_f16(0.5f * u(g));           // zero step
    stats[i + 3] = f32_to_f16(-1.0f + 2 * u(g));      // zero base
  }
  std::vector<std::vector<SpqrOutlier>> out(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++)
      if (u(g) < 0.03f) out[size_t(r)].push_back({int32_t(c), 2.0f * u(g) - 1.0f});
  return std::make_unique<SpqrMatrix>(R, C, l, q.data(), sc.data(), zc.data(), std::move(stats), out);
}

}  // namespace

TEST(Spqr, QuantizedStatisticsRoundTrip) {
  // Second level alone: every statistic within half a step (+ the f16 rounding of the base) of its value.
  std::mt19937 g(3);
  std::uniform_real_distribution<float> u(0.002f, 0.2f);
  for (int bits : {2, 3, 4, 8}) {
    std::vector<float> v(16);
    for (auto& x : v) x = u(g);
    std::vector<uint8_t> codes(16);
    SpqrStatGrid sg = spqr_quantize_stats(v.data(), 16, bits, codes.data());
    const float step = f16_to_f32(sg.step), base = f16_to_f32(sg.base);
    EXPECT_GE(step * float((1 << bits) - 1), *std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end()));
    for (int i = 0; i < 16; i++) {
      ASSERT_LT(codes[size_t(i)], 1 << bits);
      EXPECT_LE(std::fabs(spqr_stat(codes[size_t(i)], sg.step, sg.base) - v[size_t(i)]),
                0.5f * step + std::fabs(base - *std::min_element(v.begin(), v.end())) + 1e-7f)
          << bits;
    }
  }
  // Through the quantizer, the file and back: the dequantized statistics of every row equal the values
  // re-derived from the stored tensors (f16 stats + unpacked stat codes), and the weights are bit-identical.
  Layer L = make_layer(40, 1040, 128, 7, 0.01);  // 65 groups per row: rows' stat codes straddle 64-code blocks
  SpqrOptions o;
  auto res = spqr_quantize(L.W.data(), L.R, L.C, L.H, o, "t");
  const int64_t ng = res.q->ngroups();
  std::string dir = test::temp_dir("spqr_stats");
  SafeTensorsWriter wr;
  nlohmann::json spec = res.q->save(wr, "layer");
  wr.write(dir + "/w.safetensors");
  SafeTensorsFile f(dir + "/w.safetensors");
  const TensorView* st = f.find("layer.stats");
  const TensorView* sc = f.find("layer.scale_codes");
  const TensorView* zc = f.find("layer.zero_codes");
  ASSERT_TRUE(st && sc && zc);
  std::vector<uint8_t> scodes(size_t((L.R * ng + 63) / 64 * 64)), zcodes(scodes.size());
  for (size_t b = 0; b < scodes.size() / 64; b++) {
    qblock_unpack(3, sc->data + b * 24, scodes.data() + b * 64);
    qblock_unpack(3, zc->data + b * 24, zcodes.data() + b * 64);
  }
  const f16_t* stats = reinterpret_cast<const f16_t*>(st->data);
  testq::FileSource src(dir + "/w.safetensors");
  WeightPtr back = load_weight(src, "layer", spec);
  auto* bq = dynamic_cast<SpqrMatrix*>(back.get());
  ASSERT_NE(bq, nullptr);
  std::vector<float> s(static_cast<size_t>(ng)), z(static_cast<size_t>(ng));
  for (int64_t r = 0; r < L.R; r++) {
    bq->row_stats(r, s.data(), z.data());
    for (int64_t gi = 0; gi < ng; gi++) {
      const f16_t* p = stats + (r / 16 * ng + gi) * 4;
      float se = f16_to_f32(p[1]) + float(scodes[size_t(r * ng + gi)]) * f16_to_f32(p[0]);
      float ze = f16_to_f32(p[3]) + float(zcodes[size_t(r * ng + gi)]) * f16_to_f32(p[2]);
      EXPECT_NEAR(s[size_t(gi)], se, 1e-6f * se);
      EXPECT_NEAR(z[size_t(gi)], ze, 1e-5f * (1 + std::fabs(ze)));
      EXPECT_GT(s[size_t(gi)], 0);
    }
  }
  EXPECT_EQ(back->dense(), res.q->dense());
}

TEST(Spqr, OutliersReduceLayerOutputError) {
  Layer L = make_layer(64, 128, 512, 11, 0.01);
  SpqrOptions with, without;
  without.threshold = 0;
  with.threshold = 0.2;
  auto a = spqr_quantize(L.W.data(), L.R, L.C, L.H, with, "t");
  auto b = spqr_quantize(L.W.data(), L.R, L.C, L.H, without, "t");
  EXPECT_EQ(b.q->nnz(), 0);
  const double frac = double(a.q->nnz()) / double(L.R * L.C);
  EXPECT_GT(frac, 0.001);
  EXPECT_LT(frac, 0.05);
  const double ea = output_error(L, a.q->dense()), eb = output_error(L, b.q->dense());
  EXPECT_LT(ea, 0.8 * eb) << "with outliers " << ea << ", without " << eb << ", " << a.q->nnz() << " outliers";
  // Each outlier costs 32 bits: the size difference is exactly that (same layout otherwise).
  EXPECT_EQ(a.q->nbytes() - b.q->nbytes(), size_t(4 * a.q->nnz()));
  // And SpQR without outliers is a real OBS quantizer: at 3 bits with groups of 16 (3.6 bits/weight) its
  // output error is below GPTQ's with groups of 32 (3.9 bits/weight) on the same Hessian.
  GptqOptions go;
  go.grid.bits = 3, go.grid.group = 32;
  const double eg = output_error(L, gptq_quantize(L.W.data(), L.R, L.C, L.H, go, "t").q->dense());
  EXPECT_LT(eb, eg) << "spqr " << eb << " gptq " << eg;
}

TEST(Spqr, BitsPerWeightEqualsStoredBytes) {
  for (int bits : {2, 3, 4}) {
    // Shapes where nothing is padded: cols multiple of 64, rows multiple of β2, rows·ngroups multiple of 64.
    Layer L = make_layer(64, 256, 300, 20 + bits, 0.01);
    SpqrOptions o;
    o.layout.bits = bits;
    auto res = spqr_quantize(L.W.data(), L.R, L.C, L.H, o, "t");
    size_t stored = 0;
    WeightPtr back = round_trip(*res.q, "bpw" + std::to_string(bits), &stored);
    ASSERT_GT(res.q->nnz(), 0);
    ASSERT_LE(res.q->max_row_outliers(), 255);  // one byte per row count
    const double nnz = double(res.q->nnz()), W = double(L.R * L.C);
    const double formula = bits + 2.0 * 3 / 16 + 4 * 16.0 / (16 * 16) + 32 * nnz / W + 8.0 * L.R / W;
    EXPECT_EQ(stored, res.q->nbytes());
    EXPECT_NEAR(8.0 * double(stored) / W, formula, 1e-12);
    EXPECT_NEAR(res.q->bits_per_weight(), formula, 1e-12);
    EXPECT_EQ(back->nbytes(), stored);
  }
  // Ragged shapes: nbytes() still equals what the file holds.
  auto m = random_spqr(37, 172, SpqrLayout{3, 16, 3, 16}, 5);
  size_t stored = 0;
  round_trip(*m, "ragged", &stored);
  EXPECT_EQ(stored, m->nbytes());
}

TEST(Spqr, KernelMatchesReference) {
  for (int bits : {2, 3, 4})
    for (int group : {16, 32, 64, 128})
      for (auto [R, C] : std::vector<std::pair<int64_t, int64_t>>{{5, 16}, {33, 172}, {70, 256}, {16, 1000}, {7, 2000}}) {
        auto m = random_spqr(R, C, SpqrLayout{bits, group, 3, 16}, uint32_t(bits * 1000 + group + C));
        auto x = test::random_vector(size_t(3 * C), uint32_t(C));
        std::vector<float> y(static_cast<size_t>(R)), yr(static_cast<size_t>(R));
        m->gemv(x.data(), y.data());
        m->gemv_ref(x.data(), yr.data());
        EXPECT_LT(testq::max_rel_err(y.data(), yr.data(), y.size()), 1e-5) << bits << " " << group << " " << C;
        // Reference independent of the packed layout: double products of the decoded weights.
        auto W = m->dense();
        auto yd = testq::matmul_double(x.data(), W.data(), 1, R, C);
        EXPECT_LT(testq::max_rel_err(yr.data(), yd.data(), y.size()), 1e-6);
        // n > 1 (sgemm on decoded tiles) and through the file.
        WeightPtr back = round_trip(*m, "k");
        std::vector<float> Y(size_t(3 * R));
        back->matmul(x.data(), 3, Y.data());
        auto Yd = testq::matmul_double(x.data(), W.data(), 3, R, C);
        EXPECT_LT(testq::max_rel_err(Y.data(), Yd.data(), Y.size()), 1e-5);
      }
}

TEST(Spqr, BadArgumentsThrow) {
  auto stage = [](nlohmann::json extra) {
    nlohmann::json s = {{"modifier", "spqr"}};
    s.update(extra);
    return s;
  };
  EXPECT_THROW(make_modifier(stage({{"bits", 5}})), Error);
  EXPECT_THROW(make_modifier(stage({{"bits", 1}})), Error);
  EXPECT_THROW(make_modifier(stage({{"bits", 8}})), Error);
  EXPECT_THROW(make_modifier(stage({{"threshold", -0.5}})), Error);
  EXPECT_THROW(make_modifier(stage({{"group", 24}})), Error);
  EXPECT_THROW(make_modifier(stage({{"stat_bits", 5}})), Error);
  EXPECT_THROW(make_modifier(stage({{"sym", true}})), Error);
  EXPECT_THROW(make_modifier(stage({{"group", 64}, {"block", 96}})), Error);
  EXPECT_NO_THROW(make_modifier(stage({{"bits", 2}, {"group", 16}, {"threshold", 0.0}})));
  Layer L = make_layer(8, 32, 64, 1, 0);
  SpqrOptions o;
  o.threshold = -1;
  EXPECT_THROW(spqr_quantize(L.W.data(), L.R, L.C, L.H, o, "t"), Error);
  o.threshold = 0.2;
  o.layout.bits = 6;
  EXPECT_THROW(spqr_quantize(L.W.data(), L.R, L.C, L.H, o, "t"), Error);
  // CLI: one line, exit 2, before any model is read.
  std::string out, err;
  EXPECT_EQ(test::run_lmpress("quantize --model /nonexistent --method spqr --bits 5 -o /tmp/x", &out, &err), 2);
  EXPECT_NE(err.find("spqr"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("quantize --model /nonexistent --method spqr --outlier-threshold -1 -o /tmp/x", &out,
                              &err),
            2);
  // A spec whose tensors do not match is refused by the loader.
  auto m = random_spqr(8, 64, SpqrLayout{}, 2);
  std::string dir = test::temp_dir("spqr_bad");
  SafeTensorsWriter wr;
  nlohmann::json spec = m->save(wr, "layer");
  wr.write(dir + "/w.safetensors");
  testq::FileSource src(dir + "/w.safetensors");
  nlohmann::json bad = spec;
  bad["bits"] = 4;
  EXPECT_THROW(load_weight(src, "layer", bad), Error);
  bad = spec;
  bad["outliers"] = spec["outliers"].get<int64_t>() + 1;
  EXPECT_THROW(load_weight(src, "layer", bad), Error);
}

TEST(Spqr, CliShortcutAndRecipeStageStoreSpqrLayers) {
  const std::string dir = test::temp_dir("spqr-cli"), model = dir + "/m";
  test::TinySpec spec;
  spec.vocab = 512;  // the stories260K tokenizer below
  test::write_tiny_model(model, spec);
  std::string tok = test::shared_dir() + "/models/stories260K/tokenizer.json";
  if (!test::exists(tok)) GTEST_SKIP() << "needs a tokenizer.json: " << tok;
  std::filesystem::copy_file(tok, model + "/tokenizer.json");
  const std::string calib = dir + "/calib.txt";
  std::string text;
  for (int i = 0; i < 2000; i++) text += char('a' + i * 7 % 26), text += i % 5 ? "" : " ";
  write_file_atomic(calib, text.data(), text.size());
  auto layers = [](const std::string& out) {
    std::ifstream f(out + "/config.json");
    return nlohmann::json::parse(f)["quantization_config"]["layers"];
  };
  std::string out, err;
  ASSERT_EQ(test::run_lmpress("quantize --model " + model + " --method spqr --bits 3 --outlier-threshold 0.2 --calib " +
                                  calib + " --seqlen 32 --nsamples 8 --json -o " + dir + "/q3",
                              &out, &err),
            0)
      << err;
  auto rep = nlohmann::json::parse(out);
  EXPECT_GT(rep["linear_bits_per_weight"].get<double>(), 3.3);
  EXPECT_LT(rep["linear_bits_per_weight"].get<double>(), 8.0);  // 32-wide rows: the per-row side data weighs
  auto l3 = layers(dir + "/q3");
  ASSERT_EQ(l3.size(), size_t(2 * 7));
  for (const auto& [name, s] : l3.items()) {
    EXPECT_EQ(s["format"], "spqr") << name;
    EXPECT_EQ(s["bits"], 3);
    EXPECT_EQ(s["group"], 16);  // the shortcut's default
  }
  const std::string recipe = dir + "/r.json";
  nlohmann::json r = {{"stages", {{{"modifier", "spqr"}, {"bits", 4}, {"group", 32}, {"threshold", 0}}}},
                      {"calibration", {{"path", calib}, {"format", "text"}, {"nsamples", 8}, {"seqlen", 32}}}};
  const std::string rs = r.dump();
  write_file_atomic(recipe, rs.data(), rs.size());
  ASSERT_EQ(test::run_lmpress("compress --model " + model + " --recipe " + recipe + " -o " + dir + "/q4", &out, &err), 0)
      << err;
  auto l4 = layers(dir + "/q4");
  for (const auto& [name, s] : l4.items()) {
    EXPECT_EQ(s["format"], "spqr") << name;
    EXPECT_EQ(s["group"], 32);
    EXPECT_EQ(s["outliers"], 0);
  }
  // The stored model runs: ppl on the calibration text is finite.
  ASSERT_EQ(test::run_lmpress("eval ppl --model " + dir + "/q3 --data " + calib + " --format text --ctx 32 --json --quiet",
                              &out, &err),
            0)
      << err;
  EXPECT_TRUE(std::isfinite(nlohmann::json::parse(out)["ppl"].get<double>()));
}

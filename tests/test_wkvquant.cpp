// WKVQuant (model/kv_cache.h KVMethod::Wkv, quant/wkvquant.h): past-only quantization keeps the current token
// exact, two-dimensional (channel-smoothed, per-token) quantization beats per-token alone on keys with channel
// outliers, and the calibrated smoothing is stored with the model.
#include <cmath>
#include <random>

#include "calib/pipeline.h"
#include "compress/recipe.h"
#include "model/forward.h"
#include "quant/wkvquant.h"
#include "testutil.h"

using namespace lmp;

namespace {

KVQuantOptions wkv(int bits) {
  KVQuantOptions kv;
  kv.method = KVMethod::Wkv;
  kv.bits = bits;
  return kv;
}

// Independent reference of one per-token group: asymmetric min/max, f16 scale and min, clamped codes.
void ref_quant(const float* x, int n, int bits, float* out) {
  float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  float s = (hi - lo) / float((1 << bits) - 1);
  const float sf = f16_to_f32(f32_to_f16(s > 0 ? s : 1.0f)), mf = f16_to_f32(f32_to_f16(lo));
  for (int i = 0; i < n; i++) {
    float q = std::clamp(std::nearbyint((x[i] - mf) / sf), 0.0f, float((1 << bits) - 1));
    out[i] = q * sf + mf;
  }
}

std::vector<float> normal(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

}  // namespace

// The defining check: the newest token's attention uses its own K/V at full precision and the past
// quantized. Expected output computed here from scratch (reference quantizer above, softmax in double).
TEST(WkvQuant, PastOnlyKeepsTheCurrentTokenExact) {
  test::TinySpec s;
  s.hidden = 32, s.heads = 2, s.kv_heads = 2, s.head_dim = 16, s.layers = 1;
  std::string dir = test::temp_dir("wkv_po");
  const ModelConfig cfg = test::write_tiny_model(dir, s);
  const int hs = 16, W = 2 * hs, T = 20, bits = 2;
  KVCache cache(cfg, T + 1, wkv(bits));
  auto K = normal(size_t(T + 1) * W, 1), V = normal(size_t(T + 1) * W, 2), q = normal(hs, 3);
  for (int t = 0; t <= T; t++) {
    cache.store(0, t, &K[size_t(t) * W], &V[size_t(t) * W]);
    if (t < T) cache.advance(1);  // position T is the current token: stored, not yet past
  }
  const float scale = 0.25f;
  std::vector<float> out(hs), scratch;
  for (int head = 0; head < 2; head++) {
    cache.attend(0, head, q.data(), T, scale, out.data(), scratch);
    std::vector<float> k(hs), v(hs);
    std::vector<double> p(T + 1), want(hs, 0.0), want_all_quant(hs, 0.0);
    std::vector<std::vector<float>> vs(T + 1);
    double mx = -1e300;
    for (int j = 0; j <= T; j++) {
      const float* kj = &K[size_t(j) * W + head * hs];
      const float* vj = &V[size_t(j) * W + head * hs];
      if (j < T) {
        ref_quant(kj, hs, bits, k.data()), ref_quant(vj, hs, bits, v.data());
      } else {
        k.assign(kj, kj + hs), v.assign(vj, vj + hs);
      }
      double d = 0;
      for (int i = 0; i < hs; i++) d += double(q[i]) * k[i];
      p[j] = d * scale, mx = std::max(mx, p[j]), vs[j] = v;
    }
    double z = 0;
    for (int j = 0; j <= T; j++) z += (p[j] = std::exp(p[j] - mx));
    for (int j = 0; j <= T; j++)
      for (int i = 0; i < hs; i++) want[i] += p[j] / z * vs[j][i];
    for (int i = 0; i < hs; i++) EXPECT_NEAR(out[i], want[i], 1e-5) << "head " << head << " channel " << i;
    // The past really is quantized: position 0 reads back the reference codes, not the f32 input.
    cache.read(0, head, 0, k.data(), v.data());
    std::vector<float> k0(hs);
    ref_quant(&K[head * hs], hs, bits, k0.data());
    for (int i = 0; i < hs; i++) EXPECT_FLOAT_EQ(k[i], k0[i]);
    EXPECT_GT(test::max_abs_diff(k.data(), &K[head * hs], hs), 1e-3);
  }
}

// With an empty past, the first token's logits equal the f32 computation exactly (it only sees itself).
TEST(WkvQuant, FirstTokenEqualsF32AndLaterTokensTrackIt) {
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.max_pos = 128;
  std::string dir = test::temp_dir("wkv_first");
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  const int V = s.vocab, T = 40;
  auto run = [&](const KVQuantOptions& kv) {
    Forward fw(*m);
    KVCache cache(m->cfg, T, kv);
    std::vector<float> logits(size_t(T) * V);
    for (int t = 0; t < T; t++) {
      int id = (t * 37 + 11) % V;
      fw.tokens(&id, 1, cache, logits.data() + size_t(t) * V, true);
    }
    return logits;
  };
  auto ref = run({}), q8 = run(wkv(8)), q2 = run(wkv(2));
  EXPECT_EQ(test::max_abs_diff(q2.data(), ref.data(), V), 0.0);
  EXPECT_EQ(test::max_abs_diff(q8.data(), ref.data(), V), 0.0);
  const double e8 = test::rel_rms_error(q8.data(), ref.data(), ref.size());
  const double e2 = test::rel_rms_error(q2.data(), ref.data(), ref.size());
  EXPECT_LT(e8, 5e-3);
  EXPECT_GT(e2, e8);
}

// Keys with an offset channel and a wide channel: per-token quantization spends its range on them; the
// static channel shift/scale (2D) equalises the channels first. Error measured on the decoded keys.
TEST(WkvQuant, TwoDimensionalBeatsPerTokenOnChannelOutliers) {
  test::TinySpec s;
  s.hidden = 32, s.heads = 2, s.kv_heads = 2, s.head_dim = 16, s.layers = 1;
  std::string dir = test::temp_dir("wkv_2d");
  const ModelConfig cfg = test::write_tiny_model(dir, s);
  const int W = 32, T = 64;
  auto K = normal(size_t(T) * W, 7), V = normal(size_t(T) * W, 8);
  for (int t = 0; t < T; t++) K[size_t(t) * W + 3] += 12.0f, K[size_t(t) * W + 21] *= 10.0f;
  std::vector<float> smooth(4 * W);
  wkv_channel_params(K.data(), T, W, 1.0, &smooth[0], &smooth[W]);
  wkv_channel_params(V.data(), T, W, -1.0, &smooth[2 * W], &smooth[3 * W]);  // identity for V
  EXPECT_NEAR(smooth[3], 12.0f, 3.0f);  // the shift found the offset channel
  auto err = [&](const std::vector<float>* sm) {
    KVCache c(cfg, T, wkv(4));
    for (int t = 0; t < T; t++) c.store(0, t, &K[size_t(t) * W], &V[size_t(t) * W], sm), c.advance(1);
    double e = 0;
    std::vector<float> k(16), v(16);
    for (int t = 0; t < T; t++)
      for (int h = 0; h < 2; h++) {
        c.read(0, h, t, k.data(), v.data());
        for (int i = 0; i < 16; i++) e += std::pow(double(k[i]) - K[size_t(t) * W + h * 16 + i], 2);
      }
    return e;
  };
  const double plain = err(nullptr), twod = err(&smooth);
  EXPECT_LT(twod, 0.5 * plain) << "2D " << twod << " per-token " << plain;
}

// The recipe stage calibrates kv_smooth per layer; it is saved with the model and used after loading.
TEST(WkvQuant, StageStoresSmoothingThatSurvivesSaveLoad) {
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.max_pos = 64;
  std::string dir = test::temp_dir("wkv_stage"), out = test::temp_dir("wkv_stage_out");
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  Samples calib(4, std::vector<int>(32));
  for (size_t i = 0; i < calib.size(); i++)
    for (size_t t = 0; t < 32; t++) calib[i][t] = int((i * 13 + t * 7 + 1) % size_t(s.vocab));
  auto mod = make_modifier({{"modifier", "wkvquant"}, {"bits", 2}});
  PipelineOptions po;
  po.progress = false;
  run_sequential(*m, calib, {mod.get()}, po);
  for (const auto& b : m->blocks) ASSERT_EQ(b.kv_smooth.size(), size_t(4 * 2 * 16));
  save_model(*m, out);
  auto r = load_model(out);
  for (size_t l = 0; l < m->blocks.size(); l++) EXPECT_EQ(r->blocks[l].kv_smooth, m->blocks[l].kv_smooth);
  EXPECT_EQ(r->n_bytes(), m->n_bytes());
  std::string err;
  EXPECT_EQ(test::run_lmpress("bench --model " + dir + " --kv-method wkvquant --kv-pre-rope", nullptr, &err), 2);
  EXPECT_NE(err.find("--kv-pre-rope"), std::string::npos) << err;
}

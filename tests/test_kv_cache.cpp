// KIVI-style KV-cache quantization: decoding with an 8-bit cache follows the f32 cache closely, 4/2-bit
// degrade gracefully, the current chunk/residual stays exact, and the memory held shrinks by the expected factor.
#include <cmath>

#include "model/forward.h"
#include "testutil.h"

using namespace lmp;

namespace {

struct Decoded {
  std::vector<float> logits;  // (T, V)
  size_t bytes;
};

Decoded decode_all(const Model& m, const std::vector<int>& ids, const KVQuantOptions& kv) {
  Forward fw(m);
  KVCache cache(m.cfg, int(ids.size()), kv);
  const int V = m.cfg.vocab;
  Decoded d{std::vector<float>(ids.size() * size_t(V)), 0};
  for (size_t t = 0; t < ids.size(); t++) fw.tokens(&ids[t], 1, cache, d.logits.data() + t * V, true);
  d.bytes = cache.bytes();
  return d;
}

std::vector<int> ids_for(int n, int vocab) {
  std::vector<int> ids(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) ids[size_t(i)] = (i * 37 + 11) % vocab;
  return ids;
}

}  // namespace

TEST(KVCache, QuantizedDecodeTracksF32) {
  std::string dir = test::temp_dir("kv");
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.head_dim = 16, s.max_pos = 256;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  auto ids = ids_for(160, s.vocab);
  Decoded ref = decode_all(*m, ids, {});
  double prev_err = 0;
  for (int bits : {8, 4, 2}) {
    KVQuantOptions kv;
    kv.bits = bits;
    Decoded q = decode_all(*m, ids, kv);
    double err = test::rel_rms_error(q.logits.data(), ref.logits.data(), q.logits.size());
    // 8-bit: codes of 1/255 of each channel's range; the logits move by well under 1%.
    if (bits == 8) {
      EXPECT_LT(err, 5e-3) << "8-bit KV cache";
    }
    EXPECT_GE(err, prev_err) << "error must grow as bits shrink (" << bits << " bits)";
    prev_err = err;
    // The first residual + group_tokens positions never see a quantized key: identical logits.
    const size_t exact = size_t(kv.residual + kv.group_tokens) * s.vocab;
    EXPECT_EQ(test::max_abs_diff(q.logits.data(), ref.logits.data(), exact), 0.0) << bits;
  }
}

TEST(KVCache, MemoryShrinksByTheExpectedFactor) {
  std::string dir = test::temp_dir("kvmem");
  test::TinySpec s;
  s.hidden = 128, s.heads = 4, s.kv_heads = 4, s.head_dim = 32, s.max_pos = 512, s.layers = 1;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  const int T = 512 - 32;  // a multiple of 32 after the 32-token residual: quantized prefix = T - 32
  auto ids = ids_for(T, s.vocab);
  Decoded f = decode_all(*m, ids, {});
  EXPECT_EQ(f.bytes, size_t(T) * s.kv_heads * s.head_dim * 4 * 2);
  for (int bits : {8, 4, 2}) {
    KVQuantOptions kv;
    kv.bits = bits;
    Decoded q = decode_all(*m, ids, kv);
    // Per head: quantized prefix Q tokens: K and V codes Q·hs·b/8 each; key params 2·hs f16 per 32-token
    // chunk; value params 2 f16 per token per group of 32 channels; the f32 tail (T − Q)·hs·4 for K and V.
    const size_t hs = 32, Q = size_t(T) - 32, heads = 4;
    size_t want = heads * (2 * Q * hs * bits / 8 + (Q / 32) * hs * 2 * 2 + Q * 1 * 2 * 2 + 2 * (T - Q) * hs * 4);
    EXPECT_EQ(q.bytes, want) << bits;
    // Codes plus one f16 pair per 32 values for keys and for values: about (b + 1)/32 of f32 once Q ≫ 32.
    EXPECT_LT(double(q.bytes) / double(f.bytes), (bits + 1.0) / 32.0 + double(T - Q) / T) << bits;
  }
}

TEST(KVCache, PreRopeKeysDecodeExactlyAtEightBitsOnShortContexts) {
  std::string dir = test::temp_dir("kvrope");
  test::TinySpec s;
  s.max_pos = 128;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  auto ids = ids_for(100, s.vocab);
  Decoded ref = decode_all(*m, ids, {});
  KVQuantOptions kv;
  kv.bits = 8;
  kv.pre_rope = true;
  Decoded q = decode_all(*m, ids, kv);
  EXPECT_LT(test::rel_rms_error(q.logits.data(), ref.logits.data(), q.logits.size()), 5e-3);
  const size_t exact = size_t(kv.residual + kv.group_tokens) * s.vocab;  // rotation on read: same math, fp noise
  EXPECT_LT(test::max_rel_diff(q.logits.data(), ref.logits.data(), exact), 1e-5);
}

TEST(KVCache, RejectsUnsupportedBits) {
  test::TinySpec s;
  std::string dir = test::temp_dir("kvbad");
  test::write_tiny_model(dir, s);
  std::string err;
  EXPECT_EQ(test::run_lmpress("bench --model " + dir + " --kv-bits 3", nullptr, &err), 2);
  EXPECT_NE(err.find("KV cache bits 3"), std::string::npos) << err;
}

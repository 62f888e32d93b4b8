// Roofline counts: bytes and FLOPs per token of a tiny model equal a hand count; the roof is the min of the
// two ceilings; the machine measurements are positive and consistent (speed itself lives in bench/).
#include "core/error.h"
#include "eval/roofline.h"
#include "testutil.h"

using namespace lmp;

namespace {

std::unique_ptr<Model> tiny(bool tied) {
  std::string dir = test::temp_dir(tied ? "roof_tied" : "roof");
  test::TinySpec s;  // hidden 32, 2 layers, 4 heads, 2 kv heads, head_dim 8, ffn 48, vocab 64
  s.tied = tied;
  test::write_tiny_model(dir, s);
  return load_model(dir);
}

// Hand count for TinySpec{}: C 32, L 2, H 4, KV 2, hs 8, F 48, V 64.
constexpr double C = 32, L = 2, H = 4, KV = 2, hs = 8, F = 48, V = 64;
// Multiply-adds of one layer's projections: q, k, v, o, gate, up, down.
constexpr double kLayerMacs = H * hs * C + 2 * (KV * hs * C) + C * H * hs + 2 * (F * C) + C * F;  // 7680
constexpr double kProjBytes = L * kLayerMacs * 4;
constexpr double kHeadBytes = V * C * 4;
constexpr double kNormBytes = (L * 2 * C + C) * 4;
constexpr double kKvPerPos = L * 2 * KV * hs * 4;   // K and V, f32, all layers
constexpr double kAttnPerPos = L * 4 * H * hs;      // q·k and p·v FLOPs per (query, key)

}  // namespace

TEST(Roofline, DecodeAndPrefillCountsEqualHandCount) {
  static_assert(kLayerMacs == 7680);
  auto m = tiny(false);
  const double W = kProjBytes + kHeadBytes + kNormBytes;
  EXPECT_DOUBLE_EQ(weight_bytes(*m), W);
  EXPECT_DOUBLE_EQ(weight_bytes(*m), double(m->n_bytes()) - V * C * 4) << "everything but the embedding table";

  TokenCost d = decode_cost(*m, 10);
  EXPECT_EQ(d.tokens, 1);
  EXPECT_DOUBLE_EQ(d.bytes, W + C * 4 + kKvPerPos * 11);
  EXPECT_DOUBLE_EQ(d.flops, 2 * L * kLayerMacs + 2 * V * C + kAttnPerPos * 11);
  EXPECT_DOUBLE_EQ(d.bytes, 73216);
  EXPECT_DOUBLE_EQ(d.flops, 37632);

  TokenCost p = prefill_cost(*m, 16);
  EXPECT_EQ(p.tokens, 16);
  EXPECT_DOUBLE_EQ(p.bytes, W + 16 * (C * 4 + kKvPerPos));
  EXPECT_DOUBLE_EQ(p.flops, 16 * 2 * L * kLayerMacs + 2 * V * C + kAttnPerPos * 16 * 17 / 2);
  EXPECT_DOUBLE_EQ(p.flops, 530432);
}

TEST(Roofline, TiedHeadReadsTheEmbedding) {
  auto m = tiny(true);
  EXPECT_DOUBLE_EQ(weight_bytes(*m), kProjBytes + kHeadBytes + kNormBytes);
  EXPECT_DOUBLE_EQ(weight_bytes(*m), double(m->n_bytes()));
}

TEST(Roofline, RoofIsTheLowerCeiling) {
  MachineRoof mr;
  mr.bandwidth_gbps = 10;
  mr.peak_gflops = 100;  // ridge at 10 FLOP/byte
  TokenCost mem{1e6, 1e6, 1};          // intensity 1: memory-bound, 1e6 B / 1e10 B/s = 1e-4 s
  RoofPoint a = roof_point(mr, mem, 5000);
  EXPECT_TRUE(a.memory_bound);
  EXPECT_NEAR(a.roof_tokens_per_s, 1e4, 1e-6);
  EXPECT_NEAR(a.fraction(), 0.5, 1e-12);
  TokenCost cmp{1e6, 1e9, 100};        // intensity 1000: compute-bound, 1e9 / 1e11 = 1e-2 s for 100 tokens
  RoofPoint b = roof_point(mr, cmp, 0);
  EXPECT_FALSE(b.memory_bound);
  EXPECT_NEAR(b.roof_tokens_per_s, 1e4, 1e-6);
}

TEST(Roofline, MachineMeasurementsArePositive) {
  // Small arrays: this checks the plumbing, not the speed (bench/ and `lmpress roofline` measure that).
  EXPECT_GT(stream_triad_gbps(size_t(8) << 20, 2, 1), 0.1);
  EXPECT_GT(fma_peak_gflops_avx2(1), 0.1);
  EXPECT_GE(fma_peak_gflops_avx512(1), 0.0);
  EXPECT_GT(sgemm_gflops(128, 1), 0.01);
  auto m = tiny(false);
  EXPECT_GT(measure_decode_tokens_per_s(*m, 8, 4, 1), 0);
  EXPECT_GT(measure_prefill_tokens_per_s(*m, 16, 1), 0);
  EXPECT_THROW(measure_prefill_tokens_per_s(*m, 1000, 1), Error);
}

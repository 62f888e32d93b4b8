#include "eval/roofline.h"

#include <algorithm>
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <random>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// Machine

size_t default_stream_bytes() {
  long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  if (llc <= 0) llc = sysconf(_SC_LEVEL2_CACHE_SIZE);
  size_t want = llc > 0 ? 2 * size_t(llc) : 0;
  return std::clamp<size_t>(want, size_t(128) << 20, size_t(512) << 20);
}

double stream_triad_gbps(size_t bytes_per_array, int reps, int threads) {
  const size_t n = bytes_per_array / sizeof(double);
  check(n > 0 && reps >= 1, "stream: array of {} bytes, {} reps", bytes_per_array, reps);
  // Uninitialised storage, then first touch by the thread that later streams it (NUMA placement).
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  double* A = a.get();
  const double* B = b.get();
  const double* Cc = c.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < n; i++) {
    a[i] = 0;
    b[i] = 1;
    c[i] = 2;
  }
  const double s = 3.0;
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now_seconds();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) A[i] = B[i] + s * Cc[i];
    best = std::min(best, now_seconds() - t0);
  }
  check(A[n / 2] == 7.0, "stream: triad result wrong");
  return 3.0 * double(n) * sizeof(double) / best / 1e9;
}

double fma_peak_gflops_avx2(int threads) {
  constexpr long iters = 20'000'000;
  constexpr int acc_n = 12;  // independent chains: hides the FMA latency (4 cycles × 2 ports)
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_seconds();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      __m256 acc[acc_n];
      for (int k = 0; k < acc_n; k++) acc[k] = _mm256_set1_ps(float(k) * 1e-3f + float(omp_get_thread_num()));
      const __m256 m = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
      for (long i = 0; i < iters; i++)
        for (int k = 0; k < acc_n; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, add);
      __m256 s = acc[0];
      for (int k = 1; k < acc_n; k++) s = _mm256_add_ps(s, acc[k]);
      alignas(32) float out[8];
      _mm256_store_ps(out, s);
      for (float x : out) sink += x;
    }
    double t = now_seconds() - t0;
    check(sink == sink, "fma loop produced NaN");
    best = std::max(best, double(threads) * iters * acc_n * 8 * 2 / t / 1e9);
  }
  return best;
}

double sgemm_gflops(int n, int reps) {
  std::vector<float> A(size_t(n) * n), B(size_t(n) * n), C(size_t(n) * n);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& x : A) x = u(rng);
  for (auto& x : B) x = u(rng);
  double best = 1e30;
  for (int r = 0; r < reps + 1; r++) {  // the first run warms up OpenBLAS's threads and buffers
    double t0 = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f, C.data(), n);
    if (r > 0) best = std::min(best, now_seconds() - t0);
  }
  return 2.0 * double(n) * n * n / best / 1e9;
}

MachineRoof measure_machine(size_t stream_bytes, int reps) {
  MachineRoof mr;
  mr.threads = omp_get_max_threads();
  mr.stream_array_bytes = stream_bytes;
  mr.bandwidth_gbps = stream_triad_gbps(stream_bytes, reps, mr.threads);
  mr.peak_gflops_avx2 = fma_peak_gflops_avx2(mr.threads);
  mr.peak_gflops_avx512 = fma_peak_gflops_avx512(mr.threads);
  mr.peak_gflops = std::max(mr.peak_gflops_avx2, mr.peak_gflops_avx512);
  mr.sgemm_gflops = sgemm_gflops(2048, std::max(1, reps / 2));
  return mr;
}

// ---------------------------------------------------------------------------------------------------
// Model: counts per token

namespace {

struct Counts {
  double proj_macs = 0;  // Σ rows·cols over the projections
  double kv_per_pos = 0;  // K+V bytes of one position, all layers
  double attn_flops_per_pos = 0;  // 4·heads·head_dim summed over layers: FLOPs per (query, key) pair
};

Counts count(const Model& m) {
  const ModelConfig& c = m.cfg;
  Counts k;
  for (int l = 0; l < c.n_layers; l++) {
    for (const Linear& lin : m.blocks[size_t(l)].lin) k.proj_macs += double(lin.out()) * double(lin.in());
    k.kv_per_pos += 2.0 * c.kv_heads(l) * c.head_dim * 4;
    k.attn_flops_per_pos += 4.0 * c.heads(l) * c.head_dim;
  }
  return k;
}

}  // namespace

double weight_bytes(const Model& m) {
  double b = double(m.lm_head.w->nbytes()) + 4.0 * double(m.final_norm.size());
  for (const Block& blk : m.blocks) {
    b += 4.0 * double(blk.attn_norm.size() + blk.ffn_norm.size());
    for (const Linear& lin : blk.lin) b += double(lin.w->nbytes()) + 4.0 * double(lin.bias.size());
  }
  return b;
}

TokenCost decode_cost(const Model& m, int ctx) {
  const ModelConfig& c = m.cfg;
  Counts k = count(m);
  TokenCost t;
  t.tokens = 1;
  t.bytes = weight_bytes(m) + 4.0 * c.hidden + k.kv_per_pos * (ctx + 1);
  t.flops = 2 * k.proj_macs + 2.0 * c.vocab * c.hidden + k.attn_flops_per_pos * (ctx + 1);
  return t;
}

TokenCost prefill_cost(const Model& m, int n) {
  const ModelConfig& c = m.cfg;
  Counts k = count(m);
  TokenCost t;
  t.tokens = n;
  t.bytes = weight_bytes(m) + double(n) * (4.0 * c.hidden + k.kv_per_pos);
  t.flops = double(n) * 2 * k.proj_macs + 2.0 * c.vocab * c.hidden + k.attn_flops_per_pos * double(n) * (n + 1) / 2;
  return t;
}

RoofPoint roof_point(const MachineRoof& mr, const TokenCost& c, double measured) {
  RoofPoint p;
  p.cost = c;
  double t_mem = c.bytes / (mr.bandwidth_gbps * 1e9), t_cmp = c.flops / (mr.peak_gflops * 1e9);
  p.memory_bound = t_mem >= t_cmp;
  p.roof_tokens_per_s = double(c.tokens) / std::max(t_mem, t_cmp);
  p.measured_tokens_per_s = measured;
  return p;
}

// ---------------------------------------------------------------------------------------------------
// Measured speed (the same procedure as cmd_bench.cpp)

static std::vector<int> random_ids(const ModelConfig& c, int n) {
  std::mt19937 rng(1234);
  std::vector<int> ids(static_cast<size_t>(n));
  for (auto& x : ids) x = int(rng() % uint32_t(c.vocab));
  return ids;
}

double measure_decode_tokens_per_s(const Model& m, int dctx, int dtok, int reps) {
  const ModelConfig& c = m.cfg;
  check(dctx >= 1 && dtok >= 1 && dctx + dtok <= c.max_pos, "roofline: decode context {} + {} tokens exceeds {}",
        dctx, dtok, c.max_pos);
  Forward fw(m);
  std::vector<int> ids = random_ids(c, dctx + dtok);
  std::vector<float> logits(size_t(c.vocab));
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    KVCache cache(c, dctx + dtok);
    fw.tokens(ids.data(), dctx, cache, logits.data(), true);
    double t0 = now_seconds();
    for (int i = 0; i < dtok; i++) fw.tokens(&ids[size_t(dctx + i)], 1, cache, logits.data(), true);
    best = std::min(best, now_seconds() - t0);
  }
  return double(dtok) / best;
}

double measure_prefill_tokens_per_s(const Model& m, int n, int reps) {
  const ModelConfig& c = m.cfg;
  check(n >= 1 && n <= c.max_pos, "roofline: prefill of {} tokens exceeds {}", n, c.max_pos);
  Forward fw(m);
  std::vector<int> ids = random_ids(c, n);
  std::vector<float> logits(size_t(c.vocab));
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    KVCache cache(c, n);
    double t0 = now_seconds();
    fw.tokens(ids.data(), n, cache, logits.data(), true);
    best = std::min(best, now_seconds() - t0);
  }
  return double(n) / best;
}

nlohmann::json to_json(const MachineRoof& mr) {
  return {{"bandwidth_gbps", mr.bandwidth_gbps},         {"peak_gflops", mr.peak_gflops},
          {"peak_gflops_avx2", mr.peak_gflops_avx2},     {"peak_gflops_avx512", mr.peak_gflops_avx512},
          {"sgemm_gflops", mr.sgemm_gflops},             {"threads", mr.threads},
          {"stream_array_bytes", mr.stream_array_bytes}, {"ridge_flops_per_byte", mr.peak_gflops / mr.bandwidth_gbps}};
}

nlohmann::json to_json(const RoofPoint& p) {
  return {{"tokens", p.cost.tokens},
          {"bytes", p.cost.bytes},
          {"flops", p.cost.flops},
          {"bytes_per_token", p.cost.bytes / p.cost.tokens},
          {"flops_per_token", p.cost.flops / p.cost.tokens},
          {"intensity_flops_per_byte", p.cost.intensity()},
          {"bound", p.memory_bound ? "memory" : "compute"},
          {"roof_tokens_per_s", p.roof_tokens_per_s},
          {"measured_tokens_per_s", p.measured_tokens_per_s},
          {"fraction_of_roof", p.fraction()}};
}

}  // namespace lmp

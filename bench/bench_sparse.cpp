// GEMV (decode, n = 1) of pruned weights in their stored forms against dense f32 (gemv_f32), on Llama-7B
// layer shapes with synthetic weights (kernels do not depend on the values):
//   ./build/bench_sparse --benchmark_min_time=0.5
// Counters: bytes of the stored matrix, GB/s = bytes / time. BM_prefill: n ≥ 16 (--benchmark_filter=prefill).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>

#include "kernels/dense.h"
#include "kernels/sparse.h"
#include "prune/mask.h"

using namespace lmp;

namespace {

std::vector<float> random_weights(int64_t rows, int64_t cols) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> W(size_t(rows * cols));
  for (float& w : W) w = nd(rng);
  return W;
}

// Magnitude mask of W: unstructured p per row, or N:M.
std::vector<float> pruned(int64_t rows, int64_t cols, double p, NMPattern nm) {
  std::vector<float> W = random_weights(rows, cols), S(W.size());
  for (size_t i = 0; i < W.size(); i++) S[i] = std::fabs(W[i]);
  apply_mask(W.data(), select_mask(S.data(), rows, cols, SparsitySpec{p, nm}).data(), rows * cols);
  return W;
}

enum Kind { Dense, Bitmap32, Bitmap16, Nm24f32, Nm24f16, Nm24q4 };

WeightPtr build(Kind k, int64_t rows, int64_t cols, double p) {
  switch (k) {
    case Dense: return nullptr;
    case Bitmap32: return SparseBitmap::from_dense(rows, cols, pruned(rows, cols, p, {}).data(), SparseValues::F32);
    case Bitmap16: return SparseBitmap::from_dense(rows, cols, pruned(rows, cols, p, {}).data(), SparseValues::F16);
    case Nm24f32: return SparseNM::from_dense(rows, cols, pruned(rows, cols, 0.5, {2, 4}).data(), 2, 4, SparseValues::F32);
    case Nm24f16: return SparseNM::from_dense(rows, cols, pruned(rows, cols, 0.5, {2, 4}).data(), 2, 4, SparseValues::F16);
    case Nm24q4:
      return SparseNMQ4::quantize(rows, cols, pruned(rows, cols, 0.5, {2, 4}).data(), 2, 4,
                                  QuantGrid{.bits = 4, .sym = false, .group = 128});
  }
  return nullptr;
}

// args: rows, cols, kind, sparsity in percent
void BM_gemv(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1);
  const Kind kind = Kind(st.range(2));
  const double p = double(st.range(3)) / 100;
  std::vector<float> W = kind == Dense ? random_weights(rows, cols) : std::vector<float>();
  WeightPtr w = build(kind, rows, cols, p);
  std::vector<float> x(static_cast<size_t>(cols), 1.0f), y(static_cast<size_t>(rows));
  for (auto _ : st) {
    if (w) w->matmul(x.data(), 1, y.data());
    else gemv_f32(W.data(), x.data(), y.data(), rows, cols);
    benchmark::DoNotOptimize(y.data());
  }
  const double bytes = w ? double(w->nbytes()) : double(rows * cols * 4);
  st.counters["MB"] = bytes / 1e6;
  st.counters["GB/s"] = benchmark::Counter(bytes, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  static const char* names[] = {"dense_f32", "bitmap_f32", "bitmap_f16", "nm2_4_f32", "nm2_4_f16", "nm2_4_int4_g128"};
  const bool unstructured = kind == Bitmap32 || kind == Bitmap16;
  std::string label = names[kind];
  if (unstructured) label.append(1, ' ').append(std::to_string(st.range(3))).append(1, '%');
  st.SetLabel(label);
}

void shapes(benchmark::internal::Benchmark* b) {
  for (auto [r, c] : {std::pair{4096, 4096}, std::pair{11008, 4096}, std::pair{4096, 11008}}) {
    b->Args({r, c, Dense, 0});
    for (int p : {50, 70, 90}) b->Args({r, c, Bitmap32, p});
    b->Args({r, c, Bitmap16, 70});
    b->Args({r, c, Nm24f32, 50});
    b->Args({r, c, Nm24f16, 50});
    b->Args({r, c, Nm24q4, 50});
  }
}

// Prefill (n ≥ 16): Y (n, rows) = X (n, cols) · Wᵀ. Kinds: dense f32 (OpenBLAS sgemm), dense f16 (DenseF16),
// bitmap f32 / f16 through the fused "load as sparse, compute as dense" kernel (sparse_gemm_avx512.cpp), and
// bitmap f32 through the previous path (decoded row tiles of 256 + sgemm). args: rows, cols, n, kind, sparsity %.
enum PrefillKind { PDenseF32, PDenseF16, PFusedF32, PFusedF16, PTilesF32 };

void BM_prefill(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1), n = st.range(2);
  const PrefillKind kind = PrefillKind(st.range(3));
  const double p = double(st.range(4)) / 100;
  WeightPtr w;
  switch (kind) {
    case PDenseF32: w = std::make_unique<DenseF32>(rows, cols, random_weights(rows, cols)); break;
    case PDenseF16: w = DenseF16::from_f32(rows, cols, random_weights(rows, cols).data()); break;
    case PFusedF32: case PTilesF32: w = build(Bitmap32, rows, cols, p); break;
    case PFusedF16: w = build(Bitmap16, rows, cols, p); break;
  }
  std::vector<float> X(size_t(n * cols), 0.5f), Y(size_t(n * rows));
  for (auto _ : st) {
    if (kind == PTilesF32) static_cast<const SparseBitmap&>(*w).SparseMatrixBase::matmul(X.data(), n, Y.data());
    else w->matmul(X.data(), n, Y.data());
    benchmark::DoNotOptimize(Y.data());
  }
  st.counters["MB"] = double(w->nbytes()) / 1e6;
  st.counters["GFLOPS"] = benchmark::Counter(2.0 * double(n * rows * cols), benchmark::Counter::kIsIterationInvariantRate,
                                             benchmark::Counter::kIs1000);
  static const char* names[] = {"dense_f32", "dense_f16", "bitmap_f32 fused", "bitmap_f16 fused", "bitmap_f32 tiles"};
  std::string label = names[kind];
  if (kind >= PFusedF32) label.append(1, ' ').append(std::to_string(st.range(4))).append(1, '%');
  st.SetLabel(label + " n=" + std::to_string(n));
}

void prefill_shapes(benchmark::internal::Benchmark* b) {
  for (auto [r, c] : {std::pair{4096, 4096}, std::pair{2048, 5632}})
    for (int n : {16, 64, 128}) {
      b->Args({r, c, n, PDenseF32, 0});
      b->Args({r, c, n, PDenseF16, 0});
      for (int p : {50, 60, 70, 80}) b->Args({r, c, n, PFusedF32, p});
      for (int p : {60, 80}) b->Args({r, c, n, PFusedF16, p});
      b->Args({r, c, n, PTilesF32, 70});
    }
}

}  // namespace

BENCHMARK(BM_gemv)->Apply(shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_prefill)->Apply(prefill_shapes)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_MAIN();

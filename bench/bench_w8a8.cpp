// W8A8 int8 × int8 GEMM against the f32 OpenBLAS GEMM (and the FP8 table-decode kernel) on Llama shapes:
// prefill n = 128 and decode n = 1. Activation quantization is included in the W8A8 times (it runs inside
// matmul). On a shared machine the minimum over repetitions is the useful number:
//   ./build/bench_w8a8 --benchmark_repetitions=5 --benchmark_report_aggregates_only=false
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "bench_util.h"
#include "kernels/dense.h"
#include "kernels/lowbit_float.h"
#include "kernels/w8a8.h"

using namespace lmp;

namespace {

using bench::f32_matrix;
using bench::random_values;

const WeightMatrix& w8a8_matrix(int group, int64_t rows, int64_t cols) {
  static std::map<std::tuple<int, int64_t, int64_t>, std::unique_ptr<WeightMatrix>> cache;
  auto& m = cache[{group, rows, cols}];
  if (!m) m = W8A8Matrix::quantize(rows, cols, f32_matrix(rows, cols).data(), group);
  return *m;
}

const WeightMatrix& fp8_matrix(int64_t rows, int64_t cols) {
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<WeightMatrix>> cache;
  auto& m = cache[{rows, cols}];
  if (!m) m = LowFloatMatrix::quantize(rows, cols, f32_matrix(rows, cols).data(), LowFloat::E4M3, 128);
  return *m;
}

void report(benchmark::State& st, int64_t rows, int64_t cols, int64_t n) {
  st.counters["GOPS"] = benchmark::Counter(2.0 * double(rows * cols * n), benchmark::Counter::kIsIterationInvariantRate,
                                           benchmark::Counter::kIs1000);
  st.counters["tokens/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_gemm_f32(benchmark::State& st) {
  const int64_t rows = st.range(0), cols = st.range(1), n = st.range(2);
  const auto& W = f32_matrix(rows, cols);
  auto X = random_values(size_t(n * cols), 2);
  std::vector<float> Y(size_t(n * rows));
  for (auto _ : st) {
    if (n == 1) gemv_f32(W.data(), X.data(), Y.data(), rows, cols);
    else gemm_f32(X.data(), W.data(), Y.data(), n, rows, cols);
    benchmark::DoNotOptimize(Y.data());
  }
  report(st, rows, cols, n);
}

void run_matmul(benchmark::State& st, const WeightMatrix& m, int64_t n) {
  auto X = random_values(size_t(n * m.cols()), 2);
  std::vector<float> Y(size_t(n * m.rows()));
  for (auto _ : st) {
    m.matmul(X.data(), n, Y.data());
    benchmark::DoNotOptimize(Y.data());
  }
  report(st, m.rows(), m.cols(), n);
}

void BM_w8a8_row(benchmark::State& st) { run_matmul(st, w8a8_matrix(0, st.range(0), st.range(1)), st.range(2)); }
void BM_w8a8_g128(benchmark::State& st) { run_matmul(st, w8a8_matrix(128, st.range(0), st.range(1)), st.range(2)); }
void BM_fp8_e4m3_g128(benchmark::State& st) { run_matmul(st, fp8_matrix(st.range(0), st.range(1)), st.range(2)); }

void shapes(benchmark::internal::Benchmark* b) {
  for (int64_t n : {128, 1}) {
    b->Args({4096, 4096, n});
    b->Args({11008, 4096, n});
    b->Args({4096, 11008, n});
  }
  b->ArgNames({"rows", "cols", "n"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

}  // namespace

BENCHMARK(BM_gemm_f32)->Apply(shapes);
BENCHMARK(BM_w8a8_row)->Apply(shapes);
BENCHMARK(BM_w8a8_g128)->Apply(shapes);
BENCHMARK(BM_fp8_e4m3_g128)->Apply(shapes);
BENCHMARK_MAIN();

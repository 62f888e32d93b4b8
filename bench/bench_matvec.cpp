// Decode GEMV (n = 1) and prefill GEMM (n = 128) on the real Llama shapes: dense f32/f16 against the
// group-wise integer formats. Threads: OMP_NUM_THREADS (default: all cores). Bytes/s counts the
// weight bytes as stored.
//   ./build/bench_matvec --benchmark_filter='gemv.*/4096/14336'
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "bench_util.h"
#include "kernels/dense.h"
#include "kernels/qint.h"

using namespace lmp;

namespace {

using bench::f32_matrix;
using bench::random_values;

const std::vector<std::pair<int64_t, int64_t>> kShapes = {
    {4096, 4096}, {11008, 4096}, {4096, 11008}, {14336, 4096}, {4096, 14336}};

const QIntMatrix& qint_matrix(int bits, int group, int64_t rows, int64_t cols) {
  static std::map<std::tuple<int, int, int64_t, int64_t>, std::unique_ptr<QIntMatrix>> cache;
  auto& m = cache[{bits, group, rows, cols}];
  if (!m) {  // random codes and params: speed does not depend on the values
    QuantGrid g{.bits = bits, .sym = false, .group = group};
    std::mt19937 rng(2);
    std::vector<uint8_t> q(size_t(rows * cols)), z(size_t(rows * g.ngroups(cols)));
    for (auto& c : q) c = uint8_t(rng() & uint32_t(g.maxq()));
    for (auto& c : z) c = uint8_t(rng() & uint32_t(g.maxq()));
    std::vector<float> s(z.size(), 0.01f);
    m = QIntMatrix::from_codes(rows, cols, g, q.data(), s.data(), z.data());
  }
  return *m;
}

// On a shared machine the minimum over repetitions (--benchmark_repetitions=N) is the useful number.
double min_of(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

void shapes(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", min_of);
  for (auto [r, c] : kShapes) b->Args({r, c});
  b->Unit(benchmark::kMicrosecond);
}

void qint_shapes(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", min_of);
  for (int bits : {4, 8, 3, 2})
    for (auto [r, c] : kShapes) b->Args({bits, 128, r, c});
  b->Args({4, 32, 4096, 14336})->Args({4, 0, 4096, 14336});
  b->Unit(benchmark::kMicrosecond);
}

}  // namespace

static void gemv_f32_(benchmark::State& st) {
  int64_t rows = st.range(0), cols = st.range(1);
  const auto& W = f32_matrix(rows, cols);
  auto x = random_values(size_t(cols), 3);
  std::vector<float> y(static_cast<size_t>(rows));
  for (auto _ : st) gemv_f32(W.data(), x.data(), y.data(), rows, cols);
  st.SetBytesProcessed(int64_t(st.iterations()) * rows * cols * 4);
}
BENCHMARK(gemv_f32_)->Apply(shapes);

static void gemv_f16_(benchmark::State& st) {
  int64_t rows = st.range(0), cols = st.range(1);
  static std::map<std::pair<int64_t, int64_t>, std::unique_ptr<DenseF16>> cache;
  auto& m = cache[{rows, cols}];
  if (!m) m = DenseF16::from_f32(rows, cols, f32_matrix(rows, cols).data());
  auto x = random_values(size_t(cols), 3);
  std::vector<float> y(static_cast<size_t>(rows));
  for (auto _ : st) m->matmul(x.data(), 1, y.data());
  st.SetBytesProcessed(int64_t(st.iterations()) * rows * cols * 2);
}
BENCHMARK(gemv_f16_)->Apply(shapes);

// Args: bits, group, rows, cols. ISA: the best this CPU runs, or LMP_QINT_ISA=avx2.
static void gemv_qint(benchmark::State& st) {
  const QIntMatrix& m = qint_matrix(int(st.range(0)), int(st.range(1)), st.range(2), st.range(3));
  auto x = random_values(size_t(m.cols()), 3);
  std::vector<float> y(size_t(m.rows()));
  for (auto _ : st) m.matmul(x.data(), 1, y.data());
  st.SetBytesProcessed(int64_t(st.iterations() * m.nbytes()));
  st.SetLabel(fmt::format("{} {} {:.3f}bpw", m.format(), isa_name(qint_isa()), m.bits_per_weight()));
}
BENCHMARK(gemv_qint)->Apply(qint_shapes);

static void gemv_qint_avx2(benchmark::State& st) {
  qint_force_isa(QIntIsa::Avx2);
  gemv_qint(st);
  qint_force_isa(qint_best_isa());
}
BENCHMARK(gemv_qint_avx2)
    ->ComputeStatistics("min", min_of)
    ->Args({4, 128, 4096, 14336})
    ->Args({8, 128, 4096, 14336})
    ->Unit(benchmark::kMicrosecond);

// Decode with the weights coming from DRAM, as in a real model: rotate through enough copies of the
// matrix to overflow the last-level cache (LMP_BENCH_COLD_MB, default 1024 MB).
static void gemv_qint_cold(benchmark::State& st) {
  const QIntMatrix& m0 = qint_matrix(int(st.range(0)), int(st.range(1)), st.range(2), st.range(3));
  const char* env = std::getenv("LMP_BENCH_COLD_MB");
  size_t budget = size_t(env ? std::atol(env) : 1024) << 20;
  size_t copies = std::max<size_t>(2, budget / m0.nbytes());
  std::vector<std::unique_ptr<QIntMatrix>> ms;
  const int64_t ng = m0.ngroups();
  for (size_t i = 0; i < copies; i++) {
    auto codes = std::make_shared<std::vector<uint8_t>>(m0.codes(), m0.codes() + m0.rows() * m0.row_bytes());
    auto scales = std::make_shared<std::vector<f16_t>>(m0.scales(), m0.scales() + m0.rows() * ng);
    auto zeros = std::make_shared<std::vector<uint8_t>>(m0.zeros(), m0.zeros() + m0.rows() * ng);
    auto keep = std::make_shared<std::tuple<decltype(codes), decltype(scales), decltype(zeros)>>(codes, scales, zeros);
    ms.push_back(std::make_unique<QIntMatrix>(m0.rows(), m0.cols(), m0.grid(), codes->data(), scales->data(),
                                              zeros->data(), keep));
  }
  auto x = random_values(size_t(m0.cols()), 3);
  std::vector<float> y(static_cast<size_t>(m0.rows()));
  size_t i = 0;
  for (auto _ : st) ms[i++ % copies]->matmul(x.data(), 1, y.data());
  st.SetBytesProcessed(int64_t(st.iterations() * m0.nbytes()));
  st.SetLabel(fmt::format("{} {} copies", m0.format(), copies));
}
BENCHMARK(gemv_qint_cold)
    ->ComputeStatistics("min", min_of)
    ->Args({4, 128, 4096, 14336})
    ->Args({8, 128, 4096, 14336})
    ->Unit(benchmark::kMicrosecond);

// Prefill n = 128.
constexpr int64_t kN = 128;

static void gemm_f32_(benchmark::State& st) {
  int64_t rows = st.range(0), cols = st.range(1);
  const auto& W = f32_matrix(rows, cols);
  auto X = random_values(size_t(kN * cols), 4);
  std::vector<float> Y(size_t(kN * rows));
  for (auto _ : st) gemm_f32(X.data(), W.data(), Y.data(), kN, rows, cols);
}
BENCHMARK(gemm_f32_)->Apply(shapes)->Unit(benchmark::kMillisecond);

// Args: bits, group, rows, cols; int8-activation kernel vs dequantize + sgemm.
static void gemm_qint_int8(benchmark::State& st) {
  const QIntMatrix& m = qint_matrix(int(st.range(0)), int(st.range(1)), st.range(2), st.range(3));
  auto X = random_values(size_t(kN * m.cols()), 4);
  std::vector<float> Y(size_t(kN * m.rows()));
  for (auto _ : st) qint_matmul_int8(m, X.data(), kN, Y.data());
}
static void gemm_qint_sgemm(benchmark::State& st) {
  const QIntMatrix& m = qint_matrix(int(st.range(0)), int(st.range(1)), st.range(2), st.range(3));
  auto X = random_values(size_t(kN * m.cols()), 4);
  std::vector<float> Y(size_t(kN * m.rows()));
  for (auto _ : st) qint_matmul_sgemm(m, X.data(), kN, Y.data());
}
static void gemm_shapes(benchmark::internal::Benchmark* b) {
  b->ComputeStatistics("min", min_of);
  for (auto [r, c] : kShapes) b->Args({4, 128, r, c});
  b->Args({8, 128, 4096, 14336})->Args({2, 128, 4096, 14336});
  b->Unit(benchmark::kMillisecond);
}
BENCHMARK(gemm_qint_int8)->Apply(gemm_shapes);
BENCHMARK(gemm_qint_sgemm)->Apply(gemm_shapes);

BENCHMARK_MAIN();

// Standalone STREAM triad (McCalpin): a[i] = b[i] + s·c[i] over three double arrays, OpenMP over all cores,
// best of N, bandwidth counting 3 arrays × 8 bytes per element (no write-allocate), as STREAM reports it.
// Independent of lmpress's own roofline code, so `lmpress roofline` can be checked against it.
//   ./build/bench_stream [MiB per array = 512] [reps = 10]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 512;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 10;
  const size_t n = (mib << 20) / sizeof(double);
  if (n == 0 || reps < 1) {
    std::fprintf(stderr, "usage: bench_stream [MiB per array] [reps]\n");
    return 2;
  }
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
  double *A = a.get(), *B = b.get(), *C = c.get();
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) A[i] = 1.0, B[i] = 2.0, C[i] = 0.5;
  const double s = 3.0;
  double best = 1e30, worst = 0, sum = 0;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) A[i] = B[i] + s * C[i];
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, t), worst = std::max(worst, t), sum += t;
  }
  if (A[n - 1] != 3.5) {
    std::fprintf(stderr, "bench_stream: wrong result %g\n", A[n - 1]);
    return 1;
  }
  const double bytes = 3.0 * double(n) * sizeof(double);
  std::printf("triad  threads %d  arrays 3 x %zu MiB  best %.2f GB/s  avg %.2f GB/s  worst %.2f GB/s\n",
              omp_get_max_threads(), mib, bytes / best / 1e9, bytes * reps / sum / 1e9, bytes / worst / 1e9);
  return 0;
}

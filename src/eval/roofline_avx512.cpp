// The AVX-512 FMA peak loop (compiled with LMP_AVX512_FLAGS; called only when the CPU has AVX-512F).
#include <algorithm>
#include <immintrin.h>
#include <omp.h>

#include "core/error.h"
#include "core/progress.h"
#include "eval/roofline.h"

namespace lmp {

double fma_peak_gflops_avx512(int threads) {
  if (!__builtin_cpu_supports("avx512f")) return 0;
  constexpr long iters = 20'000'000;
  constexpr int acc_n = 16;  // independent chains (4-cycle latency × 2 ports, with margin)
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_seconds();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
      __m512 acc[acc_n];
      for (int k = 0; k < acc_n; k++) acc[k] = _mm512_set1_ps(float(k) * 1e-3f + float(omp_get_thread_num()));
      const __m512 m = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
      for (long i = 0; i < iters; i++)
        for (int k = 0; k < acc_n; k++) acc[k] = _mm512_fmadd_ps(acc[k], m, add);
      __m512 s = acc[0];
      for (int k = 1; k < acc_n; k++) s = _mm512_add_ps(s, acc[k]);
      alignas(64) float out[16];
      _mm512_store_ps(out, s);
      for (float x : out) sink += x;
    }
    double t = now_seconds() - t0;
    check(sink == sink, "fma loop produced NaN");
    best = std::max(best, double(threads) * iters * acc_n * 16 * 2 / t / 1e9);
  }
  return best;
}

}  // namespace lmp

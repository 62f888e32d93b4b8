// lmpress bench matvec --rows R --cols C --format f32|f16|<lmpress int format>|spqr3_g16|<ggml type> [--n 1] [--reps 20]
//                      [--cold] [--json]
// Times one stored weight matrix's matmul Y(n, rows) = X(n, cols)·Wᵀ on random values (speed does not depend
// on them): µs per call (minimum over reps), GB/s of weight bytes read, GFLOP/s. --cold rotates through enough
// copies of the matrix to exceed the last-level cache, so the weights stream from DRAM as in a real model.
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "kernels/dense.h"
#include "kernels/ggml_blocks_matrix.h"
#include "kernels/qint.h"
#include "quant/spqr.h"

namespace lmp {

// Builds a matrix of the named format from W: "f32", "f16", a QIntMatrix name ("int4_g128_asym"), or a
// ggml block type ("q4_0", "q4_K", "q8_0", ...).
WeightPtr make_weight_of_format(const std::string& fmt, int64_t rows, int64_t cols, const float* W) {
  if (fmt == "f32") return std::make_unique<DenseF32>(rows, cols, std::vector<float>(W, W + rows * cols));
  if (fmt == "f16") return DenseF16::from_f32(rows, cols, W);
  for (const QuantGrid& g : QIntMatrix::all_grids())
    if (fmt == QIntMatrix::format_name(g)) return QIntMatrix::quantize(rows, cols, W, g);
  if (const GgmlTypeTraits* t = ggml_type_by_name(fmt)) return GgmlBlockMatrix::quantize(t->type, rows, cols, W);
  int b = 0, g = 0;
  if (std::sscanf(fmt.c_str(), "spqr%d_g%d", &b, &g) == 2 && fmt == fmt::format("spqr{}_g{}", b, g)) {
    // SpQR with an identity Hessian (speed does not depend on the values; ~1-2% outliers at τ = 0.2)
    SpqrOptions o;
    o.layout.bits = b, o.layout.group = g;
    std::vector<double> H(size_t(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; i++) H[size_t(i * cols + i)] = 1.0;
    return spqr_quantize(W, rows, cols, H, o, "--format " + fmt).q;
  }
  fail("--format '{}': want f32, f16, an lmpress int format (e.g. int4_g128_asym), spqr<b>_g<group> (e.g. spqr3_g16) "
       "or a ggml type (e.g. q4_K)", fmt);
}

int bench_matvec(int argc, char** argv) {
  Args a(argc, argv, 3, {"json", "cold"});
  const int64_t rows = a.integer("rows", 4096), cols = a.integer("cols", 4096), n = a.integer("n", 1);
  const std::string fmt = a.str("format", "f32");
  const int reps = int(a.integer("reps", 20));
  const bool json = a.flag("json"), cold = a.flag("cold");
  a.finish();
  check(rows > 0 && cols > 0 && n > 0 && reps > 0, "bench matvec: --rows, --cols, --n and --reps must be positive");
  std::mt19937 rng(42);
  std::normal_distribution<float> d(0.f, 0.02f);
  std::vector<float> W(static_cast<size_t>(rows * cols)), X(static_cast<size_t>(n * cols)),
      Y(static_cast<size_t>(n * rows));
  for (auto& w : W) w = d(rng);
  for (auto& x : X) x = d(rng) * 50.f;
  std::vector<WeightPtr> mats;
  mats.push_back(make_weight_of_format(fmt, rows, cols, W.data()));
  const size_t bytes = mats[0]->nbytes();
  if (cold)  // enough copies to hold 1 GiB, beyond any LLC
    while (mats.size() * bytes < (size_t(1) << 30) && mats.size() < 256)
      mats.push_back(make_weight_of_format(fmt, rows, cols, W.data()));
  for (auto& m : mats) m->matmul(X.data(), n, Y.data());  // warm-up (and page-in)
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    const WeightMatrix& m = *mats[size_t(r) % mats.size()];
    double t0 = now_seconds();
    m.matmul(X.data(), n, Y.data());
    best = std::min(best, now_seconds() - t0);
  }
  const double us = best * 1e6, gbps = double(bytes) / best / 1e9, gflops = 2.0 * rows * cols * n / best / 1e9;
  nlohmann::json j = {{"format", mats[0]->format() == "ggml" ? fmt : mats[0]->format()},
                      {"rows", rows}, {"cols", cols}, {"n", n}, {"us", us}, {"gbps", gbps}, {"gflops", gflops},
                      {"bytes", bytes}, {"bits_per_weight", mats[0]->bits_per_weight()}, {"cold", cold},
                      {"reps", reps}};
  if (json)
    print_json(j);
  else
    std::printf("%s %lldx%lld n=%lld: %.1f us, %.2f GB/s, %.1f GFLOP/s (%.3f bits/weight%s)\n", fmt.c_str(),
                (long long)rows, (long long)cols, (long long)n, us, gbps, gflops, mats[0]->bits_per_weight(),
                cold ? ", cold" : "");
  return 0;
}

}  // namespace lmp

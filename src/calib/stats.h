// Per-Linear input statistics accumulated over calibration data, as sums so they add across samples
// (and across MPI ranks): Σ xxᵀ (the GPTQ/SparseGPT Hessian up to the factor 2/n), Σ|x_j|, Σx_j², max|x_j|,
// and the token count. Linears that read the same input (q/k/v; gate/up) share one accumulator.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model/model.h"

namespace lmp {

struct StatsRequest {
  bool hessian = false;   // Σ xxᵀ (in × in, f64) — GPTQ, SparseGPT, OBS-based methods
  bool channels = true;   // Σ|x|, Σx², max|x| per input channel — AWQ, Wanda, SmoothQuant, ASVD
};

struct LinearStats {
  int64_t in = 0;
  int64_t count = 0;                // tokens seen
  std::vector<double> xxt;          // (in, in) Σ x xᵀ, full symmetric, when requested
  std::vector<double> abs_sum;      // (in) Σ|x_j|
  std::vector<double> sq_sum;       // (in) Σ x_j²
  std::vector<float> abs_max;       // (in) max |x_j|

  void init(int64_t in, const StatsRequest& r);
  void add(const float* X, int64_t n);     // X (n, in)
  void merge(const LinearStats& o);        // this += o (fixed order keeps results deterministic)
  // H = 2/count · Σ xxᵀ (the normalisation of the GPTQ reference code), row-major (in, in).
  std::vector<double> hessian() const;
  std::vector<double> mean_abs() const;    // Σ|x| / count
  std::vector<double> l2_norm() const;     // sqrt(Σx²) — Wanda's ‖X_j‖₂
};

// Which accumulator a Linear's input uses: 0 attention input (q,k,v), 1 o_proj input, 2 MLP input
// (gate, up), 3 down_proj input.
constexpr std::array<int, kLinearsPerBlock> kInputSite = {0, 0, 0, 1, 2, 2, 3};
constexpr int kInputSites = 4;

struct BlockStats {
  std::array<LinearStats, kInputSites> site;
  const LinearStats& of(LinearKind k) const { return site[size_t(kInputSite[size_t(k)])]; }
};

}  // namespace lmp

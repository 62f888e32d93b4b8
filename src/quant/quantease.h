// QuantEase (Behdin, Acharya, Gupta, Song, Keerthi, Mazumder 2023, "QuantEase: Optimization-based Quantization
// for Language Models", arXiv 2309.01885): layer-wise quantization by cyclic coordinate descent on
//   f(Ŵ) = ‖W X − Ŵ X‖_F² = tr((W − Ŵ) Σ (W − Ŵ)ᵀ),   Σ = X Xᵀ (here H = 2/n·Σxxᵀ, calib/stats; a scale of f).
// With the grid of each group fixed (from the initial quantizer), f restricted to one weight ŵ_rj is a 1-D
// quadratic with curvature Σ_jj and minimiser ŵ_rj + G_rj / Σ_jj, G = (W − Ŵ) Σ; the best grid value is the
// nearest one, so each update is exact and f never increases. A pass updates every column j in turn for all rows
// at once and keeps G current with one rank-1 row update per changed weight (rows·cols² per pass, no inverse).
// Initialised from GPTQ (default) or RTN: CD then only lowers the GPTQ/RTN objective.
// Outlier-aware variant (the paper's §4, "QuantEase with outliers"): W ≈ Ŵ + S with S holding s = ⌊frac·rows·cols⌋
// weights in f16. S starts as the s largest W_rj²·Σ_jj (so the grid is fitted without them); then CD passes on
// W − S alternate with iterative hard thresholding on S, S ← top-s(S + (W − Ŵ − S) Σ / λ_max(Σ)), which does
// not increase f either (step 1/L of the majoriser).
// Stored: a QIntMatrix (the grid's packed codes + f16 scales + zeros, int kernels); with outliers a
// ResidualMatrix(QIntMatrix, sparse_bitmap_f16) (kernels/residual.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/weight.h"
#include "quant/grid.h"

namespace lmp {

struct QuantEaseOptions {
  QuantGrid grid;
  bool init_gptq = true;    // else RTN
  double damp = 0.01;       // GPTQ initialisation only
  int iters = 20;           // coordinate-descent passes
  double outlier_frac = 0;  // fraction of weights kept in f16 beside the grid (0 = plain QuantEase)
};

struct QuantEaseResult {
  WeightPtr w;
  // f at the start and after every pass (with outliers: after every CD pass and every S step).
  std::vector<double> history;
};

// tr((W − Ŵ) Σ (W − Ŵ)ᵀ) for W, Ŵ (rows × cols), Σ (cols × cols).
double layer_objective(const float* W, const float* Wq, int64_t rows, int64_t cols, const std::vector<double>& Sigma);

QuantEaseResult quantease_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& Sigma,
                                   const QuantEaseOptions& o, const std::string& what);

std::unique_ptr<BlockModifier> make_quantease_modifier(const nlohmann::json& stage);

}  // namespace lmp

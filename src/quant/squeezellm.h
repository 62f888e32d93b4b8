// SqueezeLLM (Kim, Hooper, Gholami, Dong, Li, Shen, Mahoney, Keutzer 2023, "SqueezeLLM: Dense-and-Sparse
// Quantization", arXiv 2306.07629): non-uniform quantization by sensitivity-weighted k-means, one codebook
// of 2^b centroids per output row, minimizing Σ_c s_c (w_c − lut[code_c])² where s_c is the Fisher
// information of weight c. The Fisher diagonal needs gradients; here its calibration proxy is the diagonal
// of the layer Hessian H = 2/n·XᵀX (s_c = H_cc, the same for every row — the paper's Fisher is per weight,
// this proxy is per input channel). Dense-and-sparse: a fraction of the weights with the largest |w|·s is
// kept exactly (f16) in a sparse side matrix and excluded from the k-means; the side matrix stores the
// residual w − lut[code], so LUT part + side = w at those positions.
// Stored: LutMatrix (kernels/lut.h): b-bit codes + f16 LUT per row (+ sparse_bitmap_f16 side), executed by
// the LUT kernel (bucket sums per code, then one dot with the row's LUT).
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/lut.h"

namespace lmp {

// Weighted 1-D k-means of w[0..n) with weights s (≥ 0) into K centroids, Lloyd iterations from the
// asymmetric min–max uniform grid (quant/grid, one group) so that iteration 0 is RTN. Empty clusters keep
// their centroid. Writes centroids (K) and codes (n); history (optional) gets the objective
// Σ s_c (w_c − centroid[code_c])² after each assignment step (history[0] = the RTN grid's objective).
void weighted_kmeans_1d(const float* w, const double* s, int64_t n, int K, int iters, float* centroids,
                        uint8_t* codes, std::vector<double>* history = nullptr);

struct SqueezeOptions {
  int bits = 3;
  double sparse_frac = 0.0;  // fraction of weights kept in the sparse side matrix
  int iters = 50;
};

// W (rows × cols), sensitivity s (cols).
std::unique_ptr<LutMatrix> squeezellm_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& s,
                                               const SqueezeOptions& o);

std::unique_ptr<BlockModifier> make_squeezellm_modifier(const nlohmann::json& stage);

}  // namespace lmp

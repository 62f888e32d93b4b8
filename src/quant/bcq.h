// BCQ — binary-coding quantization (Xu, Wang, Zhang, Wang, Zha 2018, "Alternating Multi-bit Quantization
// for Recurrent Neural Networks"), in the form LUT-GEMM executes (Park et al. 2023, "LUT-GEMM: Quantized
// Matrix Multiplication based on LUTs for Efficient Inference in Large-Scale Generative Language Models",
// arXiv 2206.09557): per row and group, w ≈ Σ_{i<q} α_i b_i with b_i ∈ {−1, +1}.
// Fitting, per group: planes are added greedily (b = sign(residual), α = mean|residual|), and after each
// addition alternating refinement runs: α ← least squares given B (q×q normal equations), then each weight
// takes the sign pattern whose Σ α_i b_i is nearest (enumerating the 2^q values). Both steps are optimal given
// the other, so the error never increases; a new plane strictly lowers it unless the residual is zero.
// α are rounded to f16 (as stored) before the final sign assignment.
// Stored: BcqMatrix (kernels/lut.h): q bit-planes + f16 α per (plane, row, group), executed by LUT-GEMM.
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "kernels/lut.h"

namespace lmp {

struct BcqOptions {
  int q = 3;       // bit-planes
  int group = 0;   // a multiple of 8, or 0 = one group per row
  int iters = 15;  // alternating refinement rounds after each added plane
};

// W (rows × cols) row-major.
std::unique_ptr<BcqMatrix> bcq_quantize(const float* W, int64_t rows, int64_t cols, const BcqOptions& o);

std::unique_ptr<BlockModifier> make_bcq_modifier(const nlohmann::json& stage);

}  // namespace lmp

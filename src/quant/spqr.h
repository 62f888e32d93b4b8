// SpQR (Dettmers, Svirschevski, Egiazarian, Kuznedelev, Frantar, Ashkboos, Borzunov, Hoefler, Alistarh 2023,
// "SpQR: A Sparse-Quantized Representation for Near-Lossless LLM Weight Compression", arXiv 2306.03078),
// Algorithm 1: the GPTQ column sweep (calib/obs_solver) with
//  - small groups (β1 = 16 input columns) whose statistics are fitted when the sweep reaches the group's first
//    column (on the weights as updated so far), excluding the weights that are likely outliers: a weight is a
//    likely outlier when leaving it out of the group's min–max fit reduces the group's error
//    Σ_i ((w_i − q(w_i)) / U_ii)² by more than τ (the paper's leave-one-out sensitivity);
//  - statistics quantized at once: each group's β2 = 16 row scales and row zeros (real-valued zero points) are
//    stat_bits = 3-bit codes on a min–max grid with f16 (step, base) (kernels/spqr_format.h), and the codes of
//    the column are found with these quantized statistics;
//  - unstructured outliers: while quantizing column i, a weight whose OBS error (w − q(w))² / U_ii² exceeds τ
//    (U_ii² = [H_F⁻¹]_ii, F the columns not yet processed) is kept: its f16 residual δ = w − q(w) is stored
//    sparsely, so it enters the error feedback as exact (to f16). Everything else is compensated as in GPTQ.
//  τ is relative, as in the authors' code: τ_abs = τ · mean_j (Var_r W[r][j] / U_jj²); threshold 0 = no outliers.
// Stored: SpqrMatrix (kernels/spqr_format.h): packed codes, 3-bit stat codes, f16 second-level stats, and the
// outliers as counts per row + u16 column + f16 value (CSR), executed by its own GEMV and sgemm paths.
// Columns are processed in natural order (no act-order permutation: it would have to be stored).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/spqr_format.h"

namespace lmp {

struct SpqrOptions {
  SpqrLayout layout;        // bits 3, group 16, stat_bits 3, stat_group 16
  double threshold = 0.2;   // relative τ (see above); 0 disables outliers
  double damp = 0.01;
  int block = 128;          // lazy batch; a multiple of layout.group
};

struct SpqrResult {
  std::unique_ptr<SpqrMatrix> q;
  double loss = 0;       // Σ (w − q)² / U_ii² / 2 over the sweep
  double damp_used = 0;
  double tau = 0;        // the absolute threshold τ_abs used
};

// W (rows × cols) row-major; H (cols × cols). `what` names the layer in errors.
SpqrResult spqr_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                         const SpqrOptions& o, const std::string& what);

std::unique_ptr<BlockModifier> make_spqr_modifier(const nlohmann::json& stage);

}  // namespace lmp

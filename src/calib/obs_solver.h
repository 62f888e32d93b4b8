// The Optimal Brain Surgeon column sweep shared by GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training
// Quantization for Generative Pre-trained Transformers") and SparseGPT (Frantar & Alistarh 2023): given a
// layer's weights W (rows × cols) and input Hessian H = 2/n·XᵀX, process columns left to right; each column
// is replaced by its compressed value q (quantized, or zeroed where pruned) and the error is spread over
// the not-yet-processed columns through the upper Cholesky factor U of H⁻¹:
//     err = (w_i − q_i) / U_ii ;   W[:, j] −= err · U_ij   for j > i
// Updates are lazy: within a block of B columns they are applied immediately; to the columns after the
// block, once per block as one GEMM (W[:, i2:] −= Err · U[i1:i2, i2:]). The per-column rule is a parameter
// (ObsStep), so GPTQ and SparseGPT are the same skeleton with a different step.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmp {

// The state a step sees: the current block's columns [i1, i2) in column-major form (W1t: (i2−i1) × rows,
// with the intra-block updates applied so far), the diagonal of U for the block, and the whole matrix Wt
// (cols × rows, column-major) as it stood when the block began (columns ≥ i2 carry all earlier blocks' updates).
struct ObsBlock {
  int64_t rows, cols, i1, i2;
  float* W1t;
  const float* Ud;   // (i2 − i1): U_ii
  const float* Wt;   // (cols, rows)
};

class ObsStep {
 public:
  virtual ~ObsStep() = default;
  // Once, before the first block: the upper Cholesky factor U of (H + λI)⁻¹ (cols × cols, row-major, in
  // processing order); U_ii² is the OBS denominator [H_F⁻¹]_ii of column i (F = columns not yet processed).
  virtual void begin(const float* U, int64_t cols) {}
  virtual void begin_block(const ObsBlock& b) {}
  // Column i (global index; i − b.i1 within the block): w (rows) holds the current column; write the
  // compressed column into q (rows).
  virtual void column(const ObsBlock& b, int64_t i, const float* w, float* q) = 0;
};

struct ObsOptions {
  double damp = 0.01;       // λ = damp · mean(diag H), added to the diagonal
  int block = 128;          // lazy batch size B
  std::vector<int> perm;    // optional column order (e.g. GPTQ act-order: descending diag H); empty = natural
};

struct ObsResult {
  double loss = 0;          // Σ (w − q)² / U_ii² / 2, GPTQ's reported loss
  double damp_used = 0;     // the damping that made H positive definite (raised ×10 on failure)
};

// Upper Cholesky factor U of (H + λI)⁻¹ (row-major, cols × cols, f32), via LAPACK dpotrf/dpotri/dpotrf.
// Dead inputs (H_ii = 0) get H_ii = 1 and are reported in `dead`. Retries with damping ×10 up to 4 times,
// then throws lmp::Error naming `what`.
std::vector<float> inverse_hessian_cholesky(std::vector<double> H, int64_t n, double damp, const std::string& what,
                                            std::vector<char>* dead, double* damp_used);

// Runs the sweep in place on W (rows × cols, row-major): on return W holds the compressed values q.
ObsResult obs_sweep(float* W, int64_t rows, int64_t cols, const std::vector<double>& H, ObsStep& step,
                    const ObsOptions& o, const std::string& what);

}  // namespace lmp

#include "calib/obs_solver.h"

#include <cblas.h>
#include <cmath>
#include <lapacke.h>

#include "core/error.h"

namespace lmp {

std::vector<float> inverse_hessian_cholesky(std::vector<double> H, int64_t n, double damp, const std::string& what,
                                            std::vector<char>* dead, double* damp_used) {
  dead->assign(size_t(n), 0);
  double mean_diag = 0;
  for (int64_t i = 0; i < n; i++) {
    double& d = H[size_t(i * n + i)];
    check(std::isfinite(d), "{}: Hessian has a non-finite diagonal entry (NaN/Inf in calibration activations?)", what);
    if (d == 0) {
      d = 1;
      (*dead)[size_t(i)] = 1;
    }
    mean_diag += d;
  }
  mean_diag /= double(n);
  for (int attempt = 0; attempt < 5; attempt++, damp *= 10) {
    std::vector<double> A = H;
    for (int64_t i = 0; i < n; i++) A[size_t(i * n + i)] += damp * mean_diag;
    // A = LLᵀ (row-major lower), A⁻¹ from the factor, then A⁻¹ = UᵀU with U upper.
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', int(n), A.data(), int(n)) != 0) continue;
    if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', int(n), A.data(), int(n)) != 0) continue;
    for (int64_t i = 0; i < n; i++)  // dpotri fills the lower triangle; mirror it
      for (int64_t j = i + 1; j < n; j++) A[size_t(i * n + j)] = A[size_t(j * n + i)];
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', int(n), A.data(), int(n)) != 0) continue;
    std::vector<float> U(size_t(n * n), 0.f);
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = i; j < n; j++) U[size_t(i * n + j)] = float(A[size_t(i * n + j)]);
    *damp_used = damp;
    return U;
  }
  fail("{}: Hessian is not positive definite even with damping {} of its mean diagonal", what, damp / 10);
}

ObsResult obs_sweep(float* W, int64_t rows, int64_t cols, const std::vector<double>& H_in, ObsStep& step,
                    const ObsOptions& o, const std::string& what) {
  check(int64_t(H_in.size()) == cols * cols, "{}: Hessian is {} values, want {}x{}", what, H_in.size(), cols, cols);
  for (int64_t i = 0; i < rows * cols; i++)
    check(std::isfinite(W[i]), "{}: weights contain NaN/Inf (row {}, column {})", what, i / cols, i % cols);
  const bool permuted = !o.perm.empty();
  // Permute H and W columns into processing order.
  std::vector<double> H = H_in;
  if (permuted) {
    check(int64_t(o.perm.size()) == cols, "{}: permutation has {} entries, want {}", what, o.perm.size(), cols);
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = 0; j < cols; j++) H[size_t(i * cols + j)] = H_in[size_t(o.perm[size_t(i)] * cols + o.perm[size_t(j)])];
  }
  ObsResult res;
  std::vector<char> dead;
  std::vector<float> U = inverse_hessian_cholesky(std::move(H), cols, o.damp, what, &dead, &res.damp_used);
  step.begin(U.data(), cols);

  // Column-major working copy: Wt[i] is column i (in processing order), contiguous over rows.
  std::vector<float> Wt(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < cols; i++) {
      int64_t src = permuted ? o.perm[size_t(i)] : i;
      Wt[size_t(i * rows + r)] = dead[size_t(i)] ? 0.f : W[r * cols + src];
    }
  std::vector<float> W1t, Err1t, Ud, q(static_cast<size_t>(rows)), err(static_cast<size_t>(rows));
  for (int64_t i1 = 0; i1 < cols; i1 += o.block) {
    const int64_t i2 = std::min<int64_t>(i1 + o.block, cols), B = i2 - i1;
    W1t.assign(Wt.begin() + i1 * rows, Wt.begin() + i2 * rows);
    Err1t.assign(size_t(B * rows), 0.f);
    Ud.resize(size_t(B));
    for (int64_t i = 0; i < B; i++) Ud[size_t(i)] = U[size_t((i1 + i) * cols + i1 + i)];
    ObsBlock blk{rows, cols, i1, i2, W1t.data(), Ud.data(), Wt.data()};
    step.begin_block(blk);
    for (int64_t i = 0; i < B; i++) {
      float* w = W1t.data() + i * rows;
      step.column(blk, i1 + i, w, q.data());
      const float d = Ud[size_t(i)];
      for (int64_t r = 0; r < rows; r++) {
        err[size_t(r)] = (w[r] - q[size_t(r)]) / d;
        res.loss += 0.5 * double(w[r] - q[size_t(r)]) * (w[r] - q[size_t(r)]) / (double(d) * d);
        w[r] = q[size_t(r)];
      }
      // W1[:, j] −= err · U[i, j] for the rest of the block
      const float* Urow = U.data() + (i1 + i) * cols;
      for (int64_t j = i + 1; j < B; j++) {
        const float u = Urow[i1 + j];
        float* wj = W1t.data() + j * rows;
        for (int64_t r = 0; r < rows; r++) wj[r] -= err[size_t(r)] * u;
      }
      std::copy(err.begin(), err.end(), Err1t.begin() + i * rows);
    }
    std::copy(W1t.begin(), W1t.end(), Wt.begin() + i1 * rows);
    // Lazy update of the columns after the block: Wt[i2:, :] −= U[i1:i2, i2:]ᵀ · Err1t
    if (i2 < cols)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(cols - i2), int(rows), int(B), -1.0f,
                  U.data() + i1 * cols + i2, int(cols), Err1t.data(), int(rows), 1.0f, Wt.data() + i2 * rows,
                  int(rows));
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t i = 0; i < cols; i++) {
      int64_t dst = permuted ? o.perm[size_t(i)] : i;
      W[r * cols + dst] = Wt[size_t(i * rows + r)];
    }
  return res;
}

}  // namespace lmp

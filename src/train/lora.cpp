#include "train/lora.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lmp::train {

void lowrank_split(const float* R, int O, int I, int rank, double scale, float* A, float* B) {
  const int k = std::min(O, I), r = std::min(rank, k);
  std::vector<float> a(R, R + size_t(O) * I), s(static_cast<size_t>(k)), U(size_t(O) * k), VT(size_t(k) * I);
  int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', O, I, a.data(), I, s.data(), U.data(), k, VT.data(), I);
  check(info == 0, "LoftQ: SVD of a {}x{} residual did not converge (info {})", O, I, info);
  std::fill_n(A, size_t(rank) * I, 0.0f);
  std::fill_n(B, size_t(O) * rank, 0.0f);
  for (int j = 0; j < r; j++) {
    const float f = float(std::sqrt(double(s[size_t(j)]) / scale));
    for (int o = 0; o < O; o++) B[size_t(o) * rank + j] = U[size_t(o) * k + j] * f;
    for (int i = 0; i < I; i++) A[size_t(j) * I + i] = VT[size_t(j) * I + i] * f;
  }
}

LoftQResult loftq_init(const float* W, int O, int I, const QuantGrid& grid, int rank, double scale, int iters) {
  LoftQResult res;
  res.A.assign(size_t(rank) * I, 0.0f);
  res.B.assign(size_t(O) * rank, 0.0f);
  std::vector<float> target(W, W + size_t(O) * I), Qd(size_t(O) * I), R(size_t(O) * I);
  for (int it = 0; it < std::max(iters, 1); it++) {
    // target = W − scale·B·A
    for (int o = 0; o < O; o++)
      for (int i = 0; i < I; i++) {
        double ba = 0;
        for (int j = 0; j < rank; j++) ba += double(res.B[size_t(o) * rank + j]) * res.A[size_t(j) * I + i];
        target[size_t(o) * I + i] = float(W[size_t(o) * I + i] - scale * ba);
      }
    res.Q = QIntMatrix::quantize(O, I, target.data(), grid);
    res.Q->dequantize(Qd.data());
    for (size_t n = 0; n < R.size(); n++) R[n] = W[n] - Qd[n];
    lowrank_split(R.data(), O, I, rank, scale, res.A.data(), res.B.data());
  }
  return res;
}

}  // namespace lmp::train

// A Linear stored as the sum of two stored matrices, W = base + corr, run as two matmuls whose outputs add:
//   Y = X · baseᵀ + X · corrᵀ.
// The stored form of quantization with an additive side correction:
//  - ZeroQuant-V2 LoRC (quant/lorc.h): base = the quantized matrix (QIntMatrix, int kernels), corr = the
//    low-rank factors of its quantization error (LowRankMatrix of f16 factors, k·(m + n) multiply-adds);
//  - QuantEase's outlier-aware variant (quant/quantease.h): corr = a few f16 outliers (sparse format).
// Both parts keep their own kernels; nothing is densified.
// Stored: "<p>.base.*" and "<p>.corr.*" (each part's own tensors), spec
//   {"format": "residual", "base": <base spec>, "corr": <corr spec>}.
#pragma once
#include "kernels/weight.h"

namespace lmp {

class ResidualMatrix final : public WeightMatrix {
 public:
  // Throws lmp::Error unless both parts have the same shape.
  ResidualMatrix(WeightPtr base, WeightPtr corr);
  std::string format() const override { return "residual"; }
  size_t nbytes() const override { return base_->nbytes() + corr_->nbytes(); }
  int64_t n_params() const override { return base_->n_params() + corr_->n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& base() const { return *base_; }
  const WeightMatrix& corr() const { return *corr_; }

 private:
  WeightPtr base_, corr_;
};

// Scalar reference: Y = X · (base + corr)ᵀ in double from the dequantized parts.
void residual_matmul_ref(const ResidualMatrix& w, const float* X, int64_t n, float* Y);

WeightPtr load_residual(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

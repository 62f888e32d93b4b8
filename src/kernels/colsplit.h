// A Linear split by input columns into a compressed part and a few full-precision columns, the stored form of
// OWQ (Lee, Jin, Kim, Kim, Park 2024, "OWQ: Outlier-Aware Weight Quantization for Efficient Fine-Tuning and
// Inference of Large Language Models", AAAI 2024; quant/owq.cpp):
//   Y = X[:, R] · Q_Rᵀ  +  X[:, K] · W_Kᵀ,   K = the kept ("weak") columns, R = the rest, in column order.
// The rest is any stored format (OWQ: a QIntMatrix of cols − k columns, run by the int kernels); the kept
// columns are dense f16 (rows, k), multiplied in f32.
// Stored: "<p>.rest.*" (the inner format), "<p>.kept_idx" I32 (k) ascending, "<p>.kept_w" F16 (rows, k).
#pragma once
#include <memory>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"

namespace lmp {

class ColumnSplitMatrix final : public WeightMatrix {
 public:
  // rest: (rows, cols − k); kept: ascending distinct column indices (k ≥ 1); wk (rows, k) rounded to f16.
  ColumnSplitMatrix(int64_t rows, int64_t cols, WeightPtr rest, std::vector<int32_t> kept, const float* wk);
  ColumnSplitMatrix(int64_t rows, int64_t cols, WeightPtr rest, std::vector<int32_t> kept, std::vector<f16_t> wk16);

  std::string format() const override { return "colsplit"; }
  size_t nbytes() const override { return rest_->nbytes() + kept_.size() * 4 + wk16_.size() * 2; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& rest() const { return *rest_; }
  const std::vector<int32_t>& kept() const { return kept_; }

 private:
  void init();
  WeightPtr rest_;
  std::vector<int32_t> kept_, other_;
  std::vector<f16_t> wk16_;  // (rows, k)
  std::vector<float> wk_;    // widened
};

WeightPtr load_colsplit(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

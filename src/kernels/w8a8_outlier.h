// LLM.int8() mixed-precision decomposition (Dettmers, Lewis, Belkada, Zettlemoyer 2022, "LLM.int8(): 8-bit
// Matrix Multiplication for Transformers at Scale", arXiv 2208.07339): the few input columns where
// activations carry large outliers are multiplied in floating point, all others vector-wise in int8
// (per-row weight scale × per-token activation scale, the W8A8 kernel of kernels/w8a8.h):
//   Y = X[:, N] · W[:, N]ᵀ (int8)  +  X[:, O] · W[:, O]ᵀ (f16 weights, f32 math),   O = outlier columns.
// Stored: "<prefix>.int8.*" (a W8A8Matrix over the cols − k regular columns, in column order),
//         "<prefix>.outlier_idx" (k) i32 ascending, "<prefix>.outlier_w" (rows, k) f16 (absent when k = 0).
// The outlier columns are chosen by the calibration statistics (quant/llm_int8.cpp).
#pragma once
#include <memory>
#include <vector>

#include "kernels/w8a8.h"

namespace lmp {

class OutlierW8A8Matrix final : public WeightMatrix {
 public:
  // W (rows × cols); outliers: distinct column indices (any order), fewer than cols.
  static std::unique_ptr<OutlierW8A8Matrix> quantize(int64_t rows, int64_t cols, const float* W,
                                                     std::vector<int32_t> outliers);
  OutlierW8A8Matrix(int64_t rows, int64_t cols, std::unique_ptr<W8A8Matrix> int8, std::vector<int32_t> outliers,
                    std::vector<f16_t> wo);

  std::string format() const override { return "llm_int8"; }
  size_t nbytes() const override { return int8_->nbytes() + outliers_.size() * 4 + wo16_.size() * 2; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const std::vector<int32_t>& outliers() const { return outliers_; }
  const W8A8Matrix& int8() const { return *int8_; }

 private:
  std::unique_ptr<W8A8Matrix> int8_;
  std::vector<int32_t> outliers_, regular_;  // ascending column indices
  std::vector<f16_t> wo16_;                  // (rows, k) as stored
  std::vector<float> wo_;                    // (rows, k) widened for sgemm
};

WeightPtr load_llm_int8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

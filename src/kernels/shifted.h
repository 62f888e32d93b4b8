// A Linear whose input is shifted per channel before the stored matrix runs: Y = (X − 1·zᵀ) · Ŵᵀ.
// The stored form of Outlier Suppression+'s channel-wise shift (quant/os_plus.h) on a Llama block, where the
// shift cannot fold into the preceding RMSNorm (it has no bias): the subtraction happens here, on the f32
// input, before the inner format (W8A8: per-token int8 activations) quantizes it, and the Linear's bias carries
// the compensation b' = b + Ŵ z, so the Linear computes X Ŵᵀ + b up to the activation quantization.
// dequantize()/dense() return the inner matrix (the shift acts on the input, not on the weights).
// Stored: "<p>.shift" F32 (cols) and the inner format under "<p>.inner.*"; spec {"format": "shift", "inner": spec}.
#pragma once
#include <vector>

#include "kernels/weight.h"

namespace lmp {

class ShiftedMatrix final : public WeightMatrix {
 public:
  ShiftedMatrix(WeightPtr inner, std::vector<float> shift);
  std::string format() const override { return "shift"; }
  size_t nbytes() const override { return inner_->nbytes() + shift_.size() * 4; }
  int64_t n_params() const override { return inner_->n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override { inner_->dequantize(W); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& inner() const { return *inner_; }
  const std::vector<float>& shift() const { return shift_; }

 private:
  WeightPtr inner_;
  std::vector<float> shift_;
};

WeightPtr load_shifted(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

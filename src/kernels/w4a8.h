// W4A8: 4-bit group-wise weights × 8-bit per-token activations, int32 dot products (FPTQ, Li et al. 2023,
// "FPTQ: Fine-grained Post-Training Quantization for Large Language Models", arXiv 2308.15987).
// The weights are a QIntMatrix with 4 bits (kernels/qint.h: same codes/scales/zeros tensors, same layout);
// what differs is the activation side: one int8 scale per token, d_t = max_c |x_t[c]| / 127, instead of the
// int4 weight-only path's one per block of 32. The kernels are qint's (int4 codes widened to bytes in
// registers, maddubs / VNNI against int8 activations, int32 sums, the f16 group scale applied per group):
//   y[t][r] = d_t · Σ_g s[r][g] · (Σ_{c∈g} q[r][c] · xq_t[c] − z[r][g] · Σ_{c∈g} xq_t[c]).
// Format names: "w4a8_" + the int4 format, e.g. "w4a8_int4_g128_asym"; stored like that int4 format plus
// "act": "per_token_int8" in the spec.
#pragma once
#include <memory>
#include <string>

#include "kernels/qint.h"

namespace lmp {

class W4A8Matrix final : public WeightMatrix {
 public:
  explicit W4A8Matrix(std::unique_ptr<QIntMatrix> w);
  std::string format() const override { return format_name(w_->grid()); }
  size_t nbytes() const override { return w_->nbytes(); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override { w_->dequantize(W); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  static std::string format_name(const QuantGrid& g) { return "w4a8_" + QIntMatrix::format_name(g); }
  const QIntMatrix& weights() const { return *w_; }

 private:
  std::unique_ptr<QIntMatrix> w_;
};

// Y (n, rows) by the kernel of `isa` (Scalar = the double reference loop) with per-token activations.
void w4a8_matmul(const W4A8Matrix& m, const float* X, int64_t n, QIntIsa isa, float* Y);

WeightPtr load_w4a8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

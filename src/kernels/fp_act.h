// FP8 activations in front of any stored weight format (ZeroQuant-FP, quant/zeroquant_fp.h): each input row
// x_t is quantized to FP8 with one dynamic scale per token, a_t = max|x_t| / max finite (E4M3: 448), and the
// weights' own kernel then runs on the FP8 values:  Y = Q8(X) · Ŵᵀ,  Q8(x) = decode(encode(x / a_t)) · a_t.
// (FP8 hardware multiplies the codes; here the rounded values are formed in f32 and the weight format's kernel
// runs on them, which gives the same numbers as FP8×FP-code products accumulated in f32.)
// Stored: the inner format's tensors under "<p>.w.*"; spec {"format": "fp_act", "act": "e4m3", "w": <spec>}.
// Nothing else is stored (the activation scales are computed per token at run time).
#pragma once
#include "kernels/lowbit_float.h"
#include "kernels/weight.h"

namespace lmp {

class FpActMatrix final : public WeightMatrix {
 public:
  FpActMatrix(WeightPtr w, LowFloat act);
  std::string format() const override { return "fp_act"; }
  size_t nbytes() const override { return w_->nbytes(); }
  int64_t n_params() const override { return w_->n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override { w_->dequantize(W); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& weights() const { return *w_; }
  LowFloat act() const { return act_; }

 private:
  WeightPtr w_;
  LowFloat act_;
};

// x (n) → Q8(x) per the header comment (the whole row is one token).
void quantize_act_row(LowFloat f, const float* x, int64_t n, float* out);
// Scalar reference: Y = Q8(X) · Ŵᵀ in double from the dequantized weights.
void fp_act_matmul_ref(const FpActMatrix& m, const float* X, int64_t n, float* Y);

WeightPtr load_fp_act(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

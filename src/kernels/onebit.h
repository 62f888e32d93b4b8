// The 1-bit Linear of OneBit (Xu, Han, Yang, Wang, Wang, Liu, Liu, Che 2024, "OneBit: Towards Extremely Low-bit
// Large Language Models", arXiv 2402.11295; quant/onebit.cpp):
//     Ŵ = diag(g) · S · diag(h),   S ∈ {−1, +1}^(m × n),  g ∈ R^m (per output row),  h ∈ R^n (per input column)
// y = Ŵ x = g ⊙ (S · (h ⊙ x)): the input is scaled once, then a ±1 matrix–vector product (no multiplies by
// weights, only sign flips and adds), then the output is scaled once.
// Stored: "<p>.signs" U8 (m, ceil(n/8)) — bit j of byte k of a row is S[r][8k + j] (1 → +1, 0 → −1; BCQ's plane
//         layout, kernels/lut.h); "<p>.g" F16 (m); "<p>.h" F16 (n).  bits/weight = 1 + 16/n + 16/m (+ row padding).
// Kernel (AVX2): u = h ⊙ x padded with zeros to 8·ceil(n/8); for each byte of a row, a 256-entry table gives the
// eight f32 sign masks (0 or 0x80000000), XORed onto 8 lanes of u and accumulated; y_r = g_r · Σ.
// Reference: the same sum from the stored bits in double.
#pragma once
#include <cstdint>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"

namespace lmp {

class OneBitMatrix final : public WeightMatrix {
 public:
  // signs (rows, cols) one byte each (nonzero → +1); g (rows), h (cols) rounded to f16 here.
  OneBitMatrix(int64_t rows, int64_t cols, const uint8_t* signs, const float* g, const float* h);
  OneBitMatrix(int64_t rows, int64_t cols, std::vector<uint8_t> packed, std::vector<f16_t> g, std::vector<f16_t> h);

  std::string format() const override { return "onebit"; }
  size_t nbytes() const override { return packed_.size() + 2 * (g16_.size() + h16_.size()); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  void matmul_ref(const float* X, int64_t n, float* Y) const;  // scalar reference (double)
  int64_t row_bytes() const { return (cols() + 7) / 8; }
  bool sign(int64_t r, int64_t c) const { return packed_[size_t(r * row_bytes() + c / 8)] >> (c % 8) & 1; }
  float g(int64_t r) const { return g_[size_t(r)]; }
  float h(int64_t c) const { return h_[size_t(c)]; }

 private:
  void widen();
  std::vector<uint8_t> packed_;        // (rows, row_bytes)
  std::vector<f16_t> g16_, h16_;       // as stored
  std::vector<float> g_, h_;           // widened
};

WeightPtr load_onebit(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

// Lookup-table weight formats (issue 8, "Beyond GPTQ/AWQ"): non-uniform codebooks instead of an affine grid.
//
// 1. LutMatrix — SqueezeLLM (Kim, Hooper, Gholami, Dong, Li, Shen, Mahoney, Keutzer 2023, "SqueezeLLM:
//    Dense-and-Sparse Quantization", arXiv 2306.07629): per output row a table of K = 2^b f16 centroids and
//    one b-bit code per weight, ŵ[r][c] = lut[r][code[r][c]]; optionally plus a sparse side matrix S (any
//    stored format, normally sparse_bitmap_f16) for the dense-and-sparse decomposition: W ≈ LUT[codes] + S.
//    Stored: "<p>.codes" U8 (rows, ceil(cols·b/8)) — each row one little-endian bit stream, code c at bits
//            [c·b, c·b + b); "<p>.lut" F16 (rows, 2^b); "<p>.sparse.*" when present.
//      bits/weight = b + 16·2^b/cols (+ the sparse side)
//    Kernel (per activation row x, per weight row): the 2^b bucket sums s_k = Σ_{c: code_c = k} x_c, then
//    y = Σ_k lut[k]·s_k — one add per weight and 2^b multiplies per row (the "group x by code" form of the
//    paper's LUT kernel). Reference: straight from the stored bits, double accumulation.
//
// 2. BcqMatrix — binary-coding quantization executed by LUT-GEMM (Park, Park, Kim, Lee, Kim, Kwon, Kwon,
//    Kim, Lee, Lee 2023, "LUT-GEMM: Quantized Matrix Multiplication based on LUTs for Efficient Inference
//    in Large-Scale Generative Language Models", arXiv 2206.09557; BCQ after Xu et al. 2018):
//      ŵ[r][c] = Σ_{i<q} α[i][r][g]·b[i][r][c],  b ∈ {−1, +1},  g = c / group.
//    Stored: "<p>.planes" U8 (q, rows, ceil(cols/8)) — bit j of byte k is b[.][.][8k + j] (1 → +1, 0 → −1);
//            "<p>.alpha" F16 (q, rows, ngroups). group: a multiple of 8, or 0 = one group per row.
//      bits/weight = q + 16·q/group
//    Kernel: for each run of 8 inputs the 256 signed sums T[m] = Σ_j (bit_j(m) ? +x_j : −x_j) are built
//    once per activation row (T[m] = T[m without its lowest bit] + 2·x_lowest, T[0] = −Σx); every bit-plane
//    byte then costs one table lookup: y[r] = Σ_i Σ_g α[i][r][g]·Σ_{k∈g} T_k[plane byte].
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"

namespace lmp {

class LutMatrix final : public WeightMatrix {
 public:
  // codes (rows, cols) one code per byte in [0, 2^bits); lut (rows, 2^bits) rounded to f16 here;
  // sparse: optional side matrix (rows, cols) added to the LUT part (nullptr = none).
  LutMatrix(int64_t rows, int64_t cols, int bits, const uint8_t* codes, const float* lut, WeightPtr sparse);
  LutMatrix(int64_t rows, int64_t cols, int bits, std::vector<uint8_t> packed, std::vector<f16_t> lut,
            WeightPtr sparse);
  static bool supported(int bits) { return bits >= 1 && bits <= 8; }

  std::string format() const override { return "lut"; }
  size_t nbytes() const override;
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  void matmul_ref(const float* X, int64_t n, float* Y) const;  // scalar reference (double)
  int bits() const { return bits_; }
  int64_t row_bytes() const { return (cols() * bits_ + 7) / 8; }
  void unpack_row(int64_t r, uint8_t* q /*cols*/) const;
  float lut(int64_t r, int k) const { return f16_to_f32(lut_[size_t(r * (1 << bits_) + k)]); }
  const WeightMatrix* sparse() const { return sparse_.get(); }

 private:
  int bits_;
  std::vector<uint8_t> packed_;  // (rows, row_bytes) + 4 bytes of padding for unaligned reads
  std::vector<f16_t> lut_;       // (rows, 2^bits)
  WeightPtr sparse_;
};

class BcqMatrix final : public WeightMatrix {
 public:
  // signs (q, rows, cols) one byte each (nonzero → +1); alpha (q, rows, ngroups) rounded to f16 here.
  BcqMatrix(int64_t rows, int64_t cols, int q, int group, const uint8_t* signs, const float* alpha);
  BcqMatrix(int64_t rows, int64_t cols, int q, int group, std::vector<uint8_t> planes, std::vector<f16_t> alpha);
  static bool supported(int q, int group) { return q >= 1 && q <= 8 && group >= 0 && group % 8 == 0; }

  std::string format() const override { return "bcq"; }
  size_t nbytes() const override { return planes_.size() + alpha_.size() * 2; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  void matmul_ref(const float* X, int64_t n, float* Y) const;  // scalar reference (double)
  int q() const { return q_; }
  int64_t group_size() const { return group_ ? group_ : cols(); }
  int64_t ngroups() const { return (cols() + group_size() - 1) / group_size(); }
  int64_t row_bytes() const { return (cols() + 7) / 8; }
  float alpha(int i, int64_t r, int64_t g) const { return f16_to_f32(alpha_[size_t((i * rows() + r) * ngroups() + g)]); }

 private:
  int q_, group_;
  std::vector<uint8_t> planes_;  // (q, rows, row_bytes)
  std::vector<f16_t> alpha_;     // (q, rows, ngroups)
};

WeightPtr load_lut(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);
WeightPtr load_bcq(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

// OliVe (Guo, Tang, Hu, Leng, Zhang, Yang, Liu, Guo, Zhu 2023, "OliVe: Accelerating Large Language Models via
// Hardware-friendly Outlier-Victim Pair Quantization", ISCA 2023, arXiv 2304.07493), 4-bit weights.
// Adjacent weights (c, c+1) form a pair stored in one byte (low nibble c, high nibble c+1), one f16 scale s
// per group of g weights (0 = per row; groups hold whole pairs). A nibble is either
//   normal:   a signed int4 n ∈ [−7, 7] (two's complement), value n · s; or
//   OVP:      the pair holds one outlier and one victim. The victim is pruned to 0 and its nibble is the
//             outlier identifier 0b1000 (−8, unused by normal values); the other nibble is a 4-bit
//             "abfloat" (sign bit + 3-bit index e), value ±A[e] · s with A = {8, 12, 16, 24, 32, 48, 64, 96}
//             (E2M1-style magnitudes 1, 1.5, 2, 3, … shifted by a bias of 2³ so they start beyond the
//             normal range). Byte 0x88 is (victim, −8 s); the encoder never emits an outlier −8 s in the low
//             nibble (that byte would read as the other order) and uses a normal clamped pair instead.
// Encoding per group: for each candidate s = max|w| / v, v ∈ {7, 9, 12, 16, 24, 32, 48, 64, 96}, every pair
// takes the better of (normal pair rounded and clamped to ±7) and (OVP: the larger-|w| element as the nearest
// abfloat, the other 0); the s with the lowest group squared error is kept (s rounded to f16 first).
// Storage: codes (rows, ceil(cols/2)) u8, scales (rows, ngroups) f16: 4 + 16/g bits/weight.
// Kernels: a 256-entry byte → (value, value) table decodes a row (olive_pair_table), then AVX2 dots (decode,
// n ≤ 4) or sgemm on decoded tiles (kernels/dense.h decoded_rows_matmul); olive_matmul_ref decodes nibble
// by nibble by the rules above in double.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/dense.h"
#include "kernels/weight.h"

namespace lmp {

// The two values (in units of s) of a pair byte, by the rules above.
std::array<float, 2> olive_decode_pair(uint8_t byte);
// Table of olive_decode_pair for every byte: entry 2·b, 2·b + 1.
const std::array<float, 512>& olive_pair_table();
// Best pair byte for (a, b) in units of s, and its squared error (in units of s²).
uint8_t olive_encode_pair(float a, float b, float* err);

class OliveMatrix final : public RowDecodedMatrix {
 public:
  static std::unique_ptr<OliveMatrix> quantize(int64_t rows, int64_t cols, const float* W, int group);
  OliveMatrix(int64_t rows, int64_t cols, int group, const uint8_t* codes, const f16_t* scales,
              std::shared_ptr<const void> keeper);

  std::string format() const override { return format_name(group_); }
  size_t nbytes() const override { return size_t(rows() * row_bytes()) + size_t(rows() * ngroups()) * 2; }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  static std::string format_name(int group);  // "olive4_g128", "olive4_row"
  static bool supported_group(int group);     // 0, 32, 64, 128, 256
  int64_t group_size() const { return group_ ? group_ : cols(); }
  int64_t ngroups() const { return (cols() + group_size() - 1) / group_size(); }
  int64_t row_bytes() const { return (cols() + 1) / 2; }
  uint8_t byte(int64_t r, int64_t p) const { return codes_[r * row_bytes() + p]; }
  float scale(int64_t r, int64_t g) const { return f16_to_f32(sc_[r * ngroups() + g]); }
  void decode_row(int64_t r, float* w) const override;

 private:
  OliveMatrix(int64_t rows, int64_t cols, int group);
  int group_;
  std::vector<uint8_t> own_codes_;
  std::vector<f16_t> own_sc_;
  std::shared_ptr<const void> keeper_;
  const uint8_t* codes_ = nullptr;
  const f16_t* sc_ = nullptr;
};

void olive_matmul_ref(const OliveMatrix& m, const float* X, int64_t n, float* Y);
WeightPtr load_olive(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

// Low-bit floating-point weight formats: FP8 E4M3 / E5M2 (Micikevicius et al. 2022, "FP8 Formats for Deep
// Learning", arXiv 2209.05433; OCP OFP8) and FP4 E2M1 (OCP MX; LLM-FP4, Liu et al. 2023, arXiv 2310.16836),
// each with one f16 scale per (row, group): ŵ = decode(code) · s.
//
//   format  bias  max finite  special codes (sign bit aside)
//   E4M3    7     448         S.1111.111 = NaN; no infinities (the "fn" variant)
//   E5M2    15    57344       S.11111.00 = ±inf, S.11111.{01,10,11} = NaN (IEEE-like)
//   E2M1    1     6           none (values 0, 0.5, 1, 1.5, 2, 3, 4, 6)
// Subnormals at exponent field 0: M · 2^(1 − bias − mbits). encode() rounds to nearest, ties to even (the
// code with an even mantissa), saturates finite overflow to ±max finite (a weight quantizer never wants inf);
// ±inf stays ±inf in E5M2 and saturates in E4M3/E2M1; NaN stays NaN (E2M1 has none: NaN → 0).
//
// Storage: codes (rows, cols) u8 for FP8, (rows, ceil(cols / 2)) u8 for FP4 (low nibble = even column);
//          scales (rows, ngroups) f16. Format names "fp8_e4m3_g128", "fp4_e2m1_row", ...
// Kernel: codes → f32 through a 256-entry decode table; decode (n ≤ 4) streams rows against f32
// activations, prefill decodes tiles of rows to f32 and calls OpenBLAS sgemm.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/dense.h"
#include "kernels/weight.h"

namespace lmp {

enum class LowFloat { E4M3, E5M2, E2M1 };

struct LowFloatSpec {
  const char* name;  // "e4m3"
  int ebits, mbits, bias;
  bool ieee_special;  // E5M2: all-ones exponent is inf/NaN; E4M3: only all-ones exponent+mantissa is NaN
  bool has_nan;
  int bits() const { return 1 + ebits + mbits; }
};
const LowFloatSpec& lowfloat_spec(LowFloat f);
bool lowfloat_from_name(const std::string& s, LowFloat* f);

float lowfloat_decode(LowFloat f, uint8_t code);
uint8_t lowfloat_encode(LowFloat f, float x);
float lowfloat_max(LowFloat f);
const std::array<float, 256>& lowfloat_table(LowFloat f);  // decode of every code (FP4: by the low nibble)

// Smallest power of two ≥ s, clamped to [2^-24, 2^15] (exact in f16): ZeroQuant-FP's scale constraint, under
// which rescaling an FP code by the scale is an exponent shift (quant/zeroquant_fp.h).
inline float pow2_ceil(float s) {
  if (!(s > 5.9604645e-08f)) return 5.9604645e-08f;
  if (s >= 32768.0f) return 32768.0f;
  int e = 0;
  const float m = std::frexp(s, &e);  // s = m · 2^e, m ∈ [0.5, 1)
  return std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
}

class LowFloatMatrix final : public RowDecodedMatrix {
 public:
  // Per-group scale s = max|w| · clip / max finite (rounded up to f16, or with pow2 up to a power of two, the
  // ZeroQuant-FP constraint); codes = encode(w / s).
  static std::unique_ptr<LowFloatMatrix> quantize(int64_t rows, int64_t cols, const float* W, LowFloat f, int group,
                                                  float clip = 1.0f, bool pow2 = false);
  LowFloatMatrix(int64_t rows, int64_t cols, LowFloat f, int group, const uint8_t* codes, const f16_t* scales,
                 std::shared_ptr<const void> keeper);

  std::string format() const override { return format_name(fmt_, group_); }
  size_t nbytes() const override { return size_t(rows() * row_bytes()) + size_t(rows() * ngroups()) * 2; }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  static std::string format_name(LowFloat f, int group);
  static bool supported_group(int group);  // 0, 32, 64, 128, 256
  static const std::vector<std::pair<LowFloat, int>>& all_formats();

  LowFloat fmt() const { return fmt_; }
  int64_t group_size() const { return group_ > 0 ? group_ : cols(); }
  int64_t ngroups() const { return (cols() + group_size() - 1) / group_size(); }
  int64_t row_bytes() const { return lowfloat_spec(fmt_).bits() == 4 ? (cols() + 1) / 2 : cols(); }
  uint8_t code(int64_t r, int64_t c) const;
  float scale(int64_t r, int64_t g) const { return f16_to_f32(sc_[r * ngroups() + g]); }
  // Row r dequantized into w (cols).
  void decode_row(int64_t r, float* w) const override;

 private:
  LowFloatMatrix(int64_t rows, int64_t cols, LowFloat f, int group);
  LowFloat fmt_;
  int group_;
  std::vector<uint8_t> own_codes_;
  std::vector<f16_t> own_sc_;
  std::shared_ptr<const void> keeper_;
  const uint8_t* codes_ = nullptr;
  const f16_t* sc_ = nullptr;
};

WeightPtr load_lowfloat(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

// Scalar reference: Y (n, rows) = X · Ŵᵀ in double.
void lowfloat_matmul_ref(const LowFloatMatrix& m, const float* X, int64_t n, float* Y);

}  // namespace lmp

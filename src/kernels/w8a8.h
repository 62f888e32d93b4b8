// W8A8: int8 weights × int8 activations with int32 accumulation (ZeroQuant, Yao et al. 2022,
// arXiv 2206.01861; the int8 GEMM of SmoothQuant and LLM.int8()).
//
// Weights: symmetric int8 codes q ∈ [−127, 127] with one f16 scale per output row (group 0) or per
// (row, group of g input columns) (ZeroQuant's group-wise weights; the last group may be ragged):
//   ŵ[r][c] = q[r][c] · s[r][c / g],   s = max|w_group| / 127 rounded UP to f16 (so |q| ≤ 127).
// Activations: quantized dynamically inside matmul, one scale per token (ZeroQuant's token-wise):
//   d_t = max_c |x_t[c]| / 127,  xq_t[c] = round(x_t[c] / d_t) ∈ [−127, 127]   (d_t = 0 → xq = 0),
//   y[t][r] = d_t · Σ_g s[r][g] · I[t][r][g],   I[t][r][g] = Σ_{c∈g} q[r][c] · xq_t[c]   (exact int32).
// Format names: "w8a8_row" (per-channel) and "w8a8_g<g>", g ∈ {32, 64, 128, 256}.
//
// Storage (counted by nbytes()):
//   qweight (P, K4 · 64) i8   P = ceil(rows / 16) panels of 16 rows, K4 = ceil(cols / 4) chunks of 4 columns;
//                             panel p, chunk k is 64 bytes: lane l (0..15) holds q[16p + l][4k .. 4k + 3]
//                             (the operand layout of vpdpbusd: one load feeds 16 rows); padding codes are 0
//   scales  (rows, ngroups) f16
// Derived at construction (not stored): per panel and group, the f32 scales and 128 · Σ_{c∈g} q (the
// correction of the AVX-512 kernel, which feeds activations as unsigned xq + 128 to vpdpbusd).
//
// Kernels: AVX-512 VNNI (vpdpbusd u8 × s8, no saturation) and AVX2 (maddubs on |q| × sign(xq, q), whose
// pairs stay ≤ 2·127·127 < 2^15, then madd to i32), register-blocked over 2 panels (32 rows) × up to 8
// tokens, threaded over rows; both produce the integers I exactly, checked against the scalar reference
// w8a8_int_ref. The ISA in use is the one of the group-wise int kernels (qint_isa / qint_force_isa).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/qint.h"
#include "kernels/weight.h"

namespace lmp {

constexpr int W8_PANEL = 16;  // rows per panel
constexpr int W8_KC = 4;      // columns per chunk

class W8A8Matrix final : public WeightMatrix {
 public:
  // Round-to-nearest of W (rows × cols) with group g (0 = per row).
  static std::unique_ptr<W8A8Matrix> quantize(int64_t rows, int64_t cols, const float* W, int group);
  // Zero-copy over stored tensors (layout above); keeper keeps them alive.
  W8A8Matrix(int64_t rows, int64_t cols, int group, const int8_t* qweight, const f16_t* scales,
             std::shared_ptr<const void> keeper);

  std::string format() const override { return format_name(group_); }
  size_t nbytes() const override;
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  static std::string format_name(int group);  // "w8a8_row", "w8a8_g128"
  static bool supported_group(int group);     // 0, 32, 64, 128, 256
  static const std::vector<int>& all_groups();

  int group() const { return group_; }
  int64_t group_size() const { return group_ > 0 ? group_ : cols(); }
  int64_t ngroups() const { return (cols() + group_size() - 1) / group_size(); }
  int64_t npanels() const { return (rows() + W8_PANEL - 1) / W8_PANEL; }
  int64_t nchunks() const { return (cols() + W8_KC - 1) / W8_KC; }
  int code(int64_t r, int64_t c) const {
    return qw_[((r / W8_PANEL) * nchunks() + c / W8_KC) * 64 + (r % W8_PANEL) * 4 + c % W8_KC];
  }
  float scale(int64_t r, int64_t g) const { return f16_to_f32(sc_[r * ngroups() + g]); }
  const int8_t* qweight() const { return qw_; }
  const float* panel_scales() const { return pscale_.data(); }  // (P, ngroups, 16)
  const int32_t* panel_corr() const { return pcorr_.data(); }   // (P, ngroups, 16): 128 · Σ q

 private:
  W8A8Matrix(int64_t rows, int64_t cols, int group);  // owned, zeroed storage
  void derive();                                      // panel scales and corrections
  int group_;
  std::vector<int8_t> own_qw_;
  std::vector<f16_t> own_sc_;
  std::shared_ptr<const void> keeper_;
  const int8_t* qw_ = nullptr;
  const f16_t* sc_ = nullptr;
  std::vector<float> pscale_;
  std::vector<int32_t> pcorr_;
};

WeightPtr load_w8a8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

// ---------------------------------------------------------------------------------------------------
// Kernels, exposed for tests and benchmarks.

// Per-token int8 activations, each row padded with zeros to K4 · 4 columns.
struct W8Acts {
  int64_t n = 0, cols4 = 0;
  bool shifted = false;     // bytes hold xq + 128 (u8, for vpdpbusd) instead of xq (i8)
  std::vector<uint8_t> xq;  // (n, cols4)
  std::vector<float> d;     // (n) per-token scale
  const uint8_t* x(int64_t t) const { return xq.data() + t * cols4; }
};
void w8_quantize_tokens(const float* X, int64_t n, int64_t cols, bool shifted, W8Acts* a);

struct W8A8View {
  int64_t rows, cols, nchunks, ngroups, gchunks;  // gchunks: chunks per group
  const int8_t* qw;
  const float* pscale;
  const int32_t* pcorr;
};
W8A8View w8a8_view(const W8A8Matrix& m);

// Output of a kernel: Y (n, rows) in floats, or (exactness checks) the integers I as Yi (n, ngroups, rows).
struct W8Out {
  float* Y = nullptr;
  int32_t* Yi = nullptr;
};
// Panels [p0, p1) for every token of A.
using W8A8PanelsKernel = void (*)(const W8A8View& W, const W8Acts& A, W8Out out, int64_t p0, int64_t p1);
W8A8PanelsKernel w8a8_kernel_avx2(bool grouped, bool ints);
W8A8PanelsKernel w8a8_kernel_avx512(bool grouped, bool ints);

// The integers I (n, ngroups, rows) by the given ISA (Scalar = the plain int64 reference loop).
void w8a8_int(const W8A8Matrix& m, const float* X, int64_t n, QIntIsa isa, int32_t* Yi);
// Scalar reference of the whole product, in double from the integers: Y (n, rows).
void w8a8_matmul_ref(const W8A8Matrix& m, const float* X, int64_t n, float* Y);

}  // namespace lmp

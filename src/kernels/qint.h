// Group-wise integer weight formats: b ∈ {2, 3, 4, 8} bits, group g ∈ {32, 64, 128, 256} or 0 (one group
// per row), asymmetric (f16 scale + u8 zero per group) or symmetric (f16 scale, implicit zero 2^(b−1)).
// Dequantized weight: ŵ[r][c] = (q[r][c] − zero[r][g]) · scale[r][g], g = c / group (see quant/grid.h).
// Format names: "int<b>_g<g>_<asym|sym>", group 0 is "int<b>_row_<asym|sym>".
//
// Storage (all of it counted by nbytes()):
//   codes  (rows, nblk · bytes(b))  each row split into nblk = ceil(cols / 64) blocks of 64 weights in the
//                                   layout of Block<b> below; the ragged tail is padded with zero codes
//   scales (rows, ngroups) f16      ngroups = ceil(cols / g); the last group may be short (cols 172, g 32)
//   zeros  (rows, ngroups) u8       asymmetric only; one byte per zero (not packed to b bits)
// e.g. int4_g128_asym costs 4 + 16/128 + 8/128 = 4.1875 bits/weight when cols is a multiple of 64.
//
// Kernels (decode n = 1 and prefill n > 1): each activation row x is quantized to int8 per block of 32,
//   d_k = max_{i∈k} |x_i| / 127,  xq_i = round(x_i / d_k) ∈ [−127, 127]   (d_k = 0 → xq = 0),
// and y[r] = Σ_g s_g · ( Σ_{k∈g} d_k · Σ_{i∈k} q_i · xq_i  −  z_g · Σ_{k∈g} d_k · Σ_{i∈k} xq_i )
// with integer dot products (AVX2 maddubs / AVX-512 VNNI dpbusd). Error bound against exact float math on
// the dequantized weights ŵ: since |x_i − d_k·xq_i| ≤ d_k / 2,
//   |y_int8[r] − Σ_i ŵ[r][i] · x_i|  ≤  Σ_k (d_k / 2) · Σ_{i∈k} |ŵ[r][i]|      (+ f32 rounding),
// i.e. a relative error of about 1/254 of the block's largest |x| per weight, usually far smaller since
// the errors cancel. qint_matmul_ref computes the same int8 math in double and is the tests' reference.
// Prefill with n ≥ qint_sgemm_min_n() instead widens tiles of ŵ to f32 and calls OpenBLAS (exact math).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"
#include "quant/grid.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// Block layouts: 64 consecutive weights of one row, codes q ∈ [0, 2^b − 1].

constexpr int QK = 64;  // weights per block

// 2 bits/weight. Byte j (0..15), bits 2k..2k+1 hold w[16k + j], k = 0..3: one shift by 2k and a mask
// give 16 consecutive codes per 128-bit lane.
struct BlockQ2 {
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ2) == QK * 2 / 8, "wrong q2 block size");

// 3 bits/weight = a 2-bit plane laid out as BlockQ2 (bits 0..1) + a 1-bit plane: bit j of qh (little-endian
// 64-bit word) is bit 2 of w[j] (AVX-512BW turns it into a byte mask directly).
struct BlockQ3 {
  uint8_t ql[16];
  uint8_t qh[8];
};
static_assert(sizeof(BlockQ3) == QK * 3 / 8, "wrong q3 block size");

// 4 bits/weight. Byte j (0..31): low nibble w[j], high nibble w[32 + j].
struct BlockQ4 {
  uint8_t qs[32];
};
static_assert(sizeof(BlockQ4) == QK * 4 / 8, "wrong q4 block size");

// 8 bits/weight. Byte j: w[j] (unsigned code).
struct BlockQ8 {
  uint8_t qs[64];
};
static_assert(sizeof(BlockQ8) == QK, "wrong q8 block size");

template <int B> struct QBlockOf;
template <> struct QBlockOf<2> { using type = BlockQ2; };
template <> struct QBlockOf<3> { using type = BlockQ3; };
template <> struct QBlockOf<4> { using type = BlockQ4; };
template <> struct QBlockOf<8> { using type = BlockQ8; };
template <int B> using QBlock = typename QBlockOf<B>::type;

constexpr int qblock_bytes(int bits) { return QK * bits / 8; }
// Scalar packing of 64 codes into a block and back (the reference layout definition).
void qblock_pack(int bits, const uint8_t* q /*64*/, uint8_t* block);
void qblock_unpack(int bits, const uint8_t* block, uint8_t* q /*64*/);

// ---------------------------------------------------------------------------------------------------
// The matrix.

class QIntMatrix final : public WeightMatrix {
 public:
  // RTN: params per (row, group) by find_params (grid.mse honoured), then codes.
  static std::unique_ptr<QIntMatrix> quantize(int64_t rows, int64_t cols, const float* W, const QuantGrid& grid);
  // From precomputed codes (what GPTQ produces): q (rows, cols) one code per byte in [0, 2^b − 1];
  // scales (rows, ngroups) — rounded to f16 here, so pass find_params' scales (already f16) for exactness;
  // zeros (rows, ngroups) ∈ [0, 2^b − 1] for asym, nullptr for sym (zero is 2^(b−1)).
  static std::unique_ptr<QIntMatrix> from_codes(int64_t rows, int64_t cols, const QuantGrid& grid, const uint8_t* q,
                                                const float* scales, const uint8_t* zeros);
  // Zero-copy over stored tensors (codes/scales/zeros as described above); keeper keeps them alive.
  QIntMatrix(int64_t rows, int64_t cols, const QuantGrid& grid, const uint8_t* codes, const f16_t* scales,
             const uint8_t* zeros, std::shared_ptr<const void> keeper);

  std::string format() const override { return format_name(grid_); }
  size_t nbytes() const override;
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  static std::string format_name(const QuantGrid& g);  // "int4_g128_asym"
  static bool supported(const QuantGrid& g);           // bits ∈ {2,3,4,8}, group ∈ {0,32,64,128,256}
  // The grids of every registered format, in registry order.
  static const std::vector<QuantGrid>& all_grids();

  const QuantGrid& grid() const { return grid_; }
  int64_t ngroups() const { return grid_.ngroups(cols()); }
  int64_t nblk() const { return (cols() + QK - 1) / QK; }
  int64_t row_bytes() const { return nblk() * qblock_bytes(grid_.bits); }
  const uint8_t* codes() const { return codes_; }
  const f16_t* scales() const { return scales_; }
  const uint8_t* zeros() const { return zeros_; }  // nullptr when symmetric
  GroupParams params(int64_t r, int64_t g) const {
    return {f16_to_f32(scales_[r * ngroups() + g]), zeros_ ? int(zeros_[r * ngroups() + g]) : 1 << (grid_.bits - 1)};
  }
  void unpack_row(int64_t r, uint8_t* q /*cols*/) const;

 private:
  QIntMatrix(int64_t rows, int64_t cols, const QuantGrid& grid);  // allocates owned storage
  QuantGrid grid_;
  std::vector<uint8_t> own_codes_, own_zeros_;
  std::vector<f16_t> own_scales_;
  std::shared_ptr<const void> keeper_;
  const uint8_t* codes_ = nullptr;
  const f16_t* scales_ = nullptr;
  const uint8_t* zeros_ = nullptr;
};

// Builds a QIntMatrix from "<prefix>.qweight/.scales/.zeros" (the weight registry's loader).
WeightPtr load_qint(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

// ---------------------------------------------------------------------------------------------------
// Kernels, exposed for tests and benchmarks.

// Activation rows quantized to int8 per block of 32 (see the header comment), zero padded to nblk·64.
struct QActs {
  int64_t n = 0, nblk = 0, ngroups = 0;
  std::vector<int8_t> xq;   // (n, nblk·64)
  std::vector<float> dv;    // (n, nblk·16): per block of 64, lanes 0..7 = d of its first 32, 8..15 = second
  std::vector<float> gsum;  // (n, ngroups): Σ_{k∈g} d_k · Σ_{i∈k} xq_i
  const int8_t* x(int64_t t) const { return xq.data() + t * nblk * QK; }
  const float* d(int64_t t) const { return dv.data() + t * nblk * 16; }
  const float* s(int64_t t) const { return gsum.data() + t * ngroups; }
};
// per_token: one d per token (max over the whole row / 127) for every block, as W4A8 (kernels/w4a8.h) wants.
void quantize_acts(const float* X, int64_t n, int64_t cols, const QuantGrid& grid, QActs* a, bool per_token = false);

// What the SIMD kernels see of a matrix.
struct QIntView {
  int bits;
  int64_t rows, cols, group /* > 0 */, ngroups, nblk, row_bytes;
  const uint8_t* codes;
  const f16_t* scales;
  const uint8_t* zeros;  // nullptr → 2^(bits−1)
};
QIntView qint_view(const QIntMatrix& m);
// Y (n, rows), rows [r0, r1) only, from acts quantized by quantize_acts.
using QIntRowsKernel = void (*)(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1);

enum class QIntIsa { Scalar, Avx2, Avx512 };
const char* isa_name(QIntIsa isa);
QIntIsa qint_best_isa();             // checked once: AVX-512 F/BW/VL/VNNI if present, else AVX2
QIntIsa qint_isa();                  // in use
void qint_force_isa(QIntIsa isa);    // test hook; throws if the CPU cannot run it
int64_t qint_sgemm_min_n();          // matmul uses dequantize+sgemm from this many activation rows
void qint_set_sgemm_min_n(int64_t n);  // bench/test hook

// Scalar reference of the int8-activation math, in double: Y (n, rows) = X (n, cols) · Ŵᵀ.
void qint_matmul_ref(const QIntMatrix& m, const float* X, int64_t n, float* Y);
// The int8-activation kernel of the chosen ISA for all n (threaded over rows); matmul calls it for n
// below qint_sgemm_min_n().
void qint_matmul_int8(const QIntMatrix& m, const float* X, int64_t n, float* Y);
// The kernel of `isa` (Scalar = the double reference) on already quantized activations, threaded over rows.
void qint_matmul_acts(const QIntMatrix& m, const QActs& a, QIntIsa isa, float* Y);
// Dequantize tiles of rows to f32 + OpenBLAS sgemm.
void qint_matmul_sgemm(const QIntMatrix& m, const float* X, int64_t n, float* Y);

// Per-ISA kernel tables (qint_avx2.cpp, qint_avx512.cpp), indexed by bits.
QIntRowsKernel qint_kernel_avx2(int bits);
QIntRowsKernel qint_kernel_avx512(int bits);

}  // namespace lmp

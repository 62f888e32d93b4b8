// The stored form of SpQR (Dettmers, Svirschevski, Egiazarian, Kuznedelev, Frantar, Ashkboos, Borzunov,
// Hoefler, Alistarh 2023, "SpQR: A Sparse-Quantized Representation for Near-Lossless LLM Weight Compression",
// arXiv 2306.03078; the quantizer is quant/spqr.cpp): small groups of b-bit codes whose statistics are
// themselves quantized, plus unstructured outliers kept sparsely.
//
//   ŵ[r][c] = (q[r][c] − ẑ[r][g]) · ŝ[r][g]  (+ δ[r][c] where (r, c) is an outlier),   g = c / β1
//   first level:  per row r and group g of β1 consecutive input columns, a scale ŝ and a real-valued zero ẑ;
//   second level: the β2 scales of rows [R·β2, R·β2 + β2) of one group g are stat_bits-bit codes on an affine
//                 grid ŝ = base + code · step with (step, base) in f16 — the same for the zeros. In float:
//                 ŝ = fma(code, step, base) (spqr_stat below, the one definition).
//   outliers:     δ = f16(w − (q − ẑ)·ŝ), the residual that makes the weight exact to f16 precision; its code
//                 q is the nearest grid code of w, so δ is a correction added by a sparse pass.
//
// Stored (all counted by nbytes(); exact bits/weight = 8·nbytes / (rows·cols), spqr_stored_bytes):
//   qweight      U8  (rows, nblk·8b)        codes, 64 per block in kernels/qint's Block<b> layout (qblock_pack)
//   scale_codes  U8  (nsb·8·sb)             the rows·ngroups scale codes in row-major order, packed as qint
//   zero_codes   U8  (nsb·8·sb)             blocks of sb bits (nsb = ceil(rows·ngroups / 64)), likewise zeros
//   stats        F16 (ceil(rows/β2), ngroups, 4)   scale step, scale base, zero step, zero base
//   outlier_count U8|U16|U32 (rows)         outliers per row, the narrowest type that holds the largest count
//                                           (the CSR row offsets are their prefix sums, rebuilt at load)
//   outlier_col  U16 (nnz)                  column of each outlier, rows in order, columns ascending
//   outlier_val  F16 (nnz)                  δ
// so bits/weight ≈ b + 2·sb/β1 + 64/(β1·β2) + 32·nnz/(rows·cols) + (8|16|32)/cols (+ padding of the last
// 64-block of a row). b ∈ {2, 3, 4}, β1 ∈ {16, 32, 64, 128}, sb ∈ {2, 3, 4, 8}, β2 ≥ 1, cols ≤ 65536.
//
// Kernels: decode (n = 1) runs spqr_gemv_avx2 straight from the packed data: per row the ngroups scales and
// zeros are dequantized from their codes, each group of 16 codes is widened to f32 and multiplied with x
// (Σ_g ŝ_g·Σ_c q_c x_c − Σ_g ŝ_g ẑ_g X_g, X_g = Σ_{c∈g} x_c), then the row's outliers add δ·x_c. n > 1 decodes
// tiles of rows to f32 and calls sgemm (SparseMatrixBase). gemv_ref is the scalar double reference.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/sparse.h"

namespace lmp {

struct SpqrLayout {
  int bits = 3;         // b, code bits
  int group = 16;       // β1, input columns per first-level group
  int stat_bits = 3;    // sb, bits of a quantized scale or zero
  int stat_group = 16;  // β2, rows sharing one second-level (step, base)
  int64_t ngroups(int64_t cols) const { return (cols + group - 1) / group; }
  int64_t nrowgroups(int64_t rows) const { return (rows + stat_group - 1) / stat_group; }
};
// Throws lmp::Error naming `what` when the layout or shape is unsupported.
void check_spqr_layout(const SpqrLayout& l, int64_t rows, int64_t cols, const std::string& what);

// The value of a second-level-quantized statistic (the one definition, used by the quantizer and kernels).
inline float spqr_stat(int code, f16_t step, f16_t base) {
  return __builtin_fmaf(float(code), f16_to_f32(step), f16_to_f32(base));
}
inline float spqr_dequant(int q, float s, float z) { return (float(q) - z) * s; }

// Second-level quantization of n ≥ 1 statistics v (one group g, β2 rows) on `bits` bits: min–max affine grid,
// step rounded up to f16 (f16_ceil) and base = f16(min v); codes[i] = clamp(round((v_i − base)/step)).
// Every v_i within the grid range is reproduced within step/2 (+ the f16 rounding of base).
struct SpqrStatGrid {
  f16_t step, base;
};
SpqrStatGrid spqr_quantize_stats(const float* v, int64_t n, int bits, uint8_t* codes);

// Exact stored bytes for a matrix of this shape and layout holding nnz outliers, the largest per row maxrow.
size_t spqr_stored_bytes(int64_t rows, int64_t cols, const SpqrLayout& l, int64_t nnz, int64_t maxrow);

struct SpqrOutlier {
  int32_t col;
  float delta;  // rounded to f16 when stored
};

class SpqrMatrix final : public SparseMatrixBase {
 public:
  // codes (rows, cols), scale/zero codes (rows, ngroups): one per byte; stats (nrowgroups, ngroups, 4) in f16;
  // outliers[r]: row r's outliers, columns ascending.
  SpqrMatrix(int64_t rows, int64_t cols, const SpqrLayout& l, const uint8_t* codes, const uint8_t* scode,
             const uint8_t* zcode, std::vector<f16_t> stats, const std::vector<std::vector<SpqrOutlier>>& outliers);
  // From the stored parts (packed as described above; counts per row).
  SpqrMatrix(int64_t rows, int64_t cols, const SpqrLayout& l, std::vector<uint8_t> codes, std::vector<uint8_t> scodes,
             std::vector<uint8_t> zcodes, std::vector<f16_t> stats, const std::vector<uint32_t>& counts,
             std::vector<uint16_t> ocol, std::vector<f16_t> oval);

  std::string format() const override { return "spqr"; }
  size_t nbytes() const override;
  int64_t n_params() const override { return rows() * cols(); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;
  void gemv(const float* x, float* y) const override;
  void gemv_ref(const float* x, float* y) const override;
  void decode_rows(int64_t r0, int64_t r1, float* W) const override;
  int64_t nnz() const override { return int64_t(ocol_.size()); }

  const SpqrLayout& layout() const { return l_; }
  int64_t ngroups() const { return l_.ngroups(cols()); }
  int64_t nblk() const { return (cols() + 63) / 64; }
  int64_t row_bytes() const { return nblk() * 8 * l_.bits; }
  const uint8_t* codes() const { return codes_.data(); }
  // Dequantized first-level statistics of row r: s, z (ngroups each).
  void row_stats(int64_t r, float* s, float* z) const;
  const int64_t* outlier_ptr() const { return optr_.data(); }  // (rows + 1), runtime only
  const uint16_t* outlier_col() const { return ocol_.data(); }
  const float* outlier_val() const { return ovalf_.data(); }   // δ widened to f32, runtime only
  int64_t max_row_outliers() const;

 private:
  void finish();  // validates, builds the runtime row offsets and f32 deltas
  SpqrLayout l_;
  std::vector<uint8_t> codes_, scodes_, zcodes_;
  std::vector<f16_t> stats_;
  std::vector<uint16_t> ocol_;
  std::vector<f16_t> oval_;
  std::vector<int64_t> optr_;
  std::vector<float> ovalf_;
};

// Fast GEMV rows [r0, r1) (kernels/spqr_avx2.cpp), y[r] = Σ_c ŵ[r][c]·x[c]; xp is x zero-padded to nblk·64
// and xg (ngroups) its group sums.
void spqr_gemv_avx2(const SpqrMatrix& m, const float* xp, const float* xg, float* y, int64_t r0, int64_t r1);

WeightPtr load_spqr(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

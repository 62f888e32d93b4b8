// Stored forms of pruned weight matrices and their kernels (issue 4, "Pruning that really removes work").
//
// 1. Unstructured: SparseBitmap — per row, a bitmap of the kept positions (1 bit/weight, u64 words) and the
//    kept values packed in column order (f32 or f16), plus a row pointer (i64) into the values.
//      bytes/weight = 1/8 + d · v       (d = density = 1 − sparsity, v = 4 for f32, 2 for f16)
//    Why bitmap and not CSR (u16 column index + value, (2 + v)·d bytes/weight): at 50–80% sparsity the
//    bitmap is smaller (CSR only wins below d = 1/16, i.e. above 93.75% sparsity), and its GEMV needs no
//    gather of x: each 16-column step is one masked expand of the packed values (vexpandps) and one masked
//    load of x (only kept lanes are read), so the inner loop is a dense FMA whose memory traffic is the
//    compressed size. GEMV (decode) is memory-bound, so time ∝ bytes: f32 values beat dense f32 from ~50%,
//    f16 values from ~0% (and halve the bytes again).
// 2. N:M (2:4, 4:8): per row, N values of every group of M consecutive inputs (f32 or f16, in column order)
//    and the position of each kept value inside its group: b = log2(M) bits (2:4 → 2 bits, 4:8 → 3 bits).
//    Indices are packed per chunk of 16 kept values (= 32 input columns for both 2:4 and 4:8): value k of a
//    chunk has its index in bits [b·k, b·k + b) of the chunk's 2b bytes (little-endian).
//      2:4 f32: 0.5·(4 + 2/8) = 2.125 bytes/weight (dense f32: 4); 2:4 f16: 1.125; 4:8 f16: 1.1875.
//    Kernel: per chunk, the 16 indices become 16 column offsets (base of the group + index) and one
//    two-register permute (vpermt2ps) picks the matching x values from the 32-column window; no gather.
// 3. N:M + 4-bit values (SparseGPT's joint sparse + quantized form): the kept values as 4-bit codes on the
//    quant/grid (ŵ = (q − zero) · scale), scale (f16) and zero (u8) per row and group of `group` input
//    columns (group a multiple of 32, or 0 = one group per row), codes packed per chunk of 16 kept values
//    into 8 bytes (byte j: low nibble value j, high nibble value j + 8), indices as in 2.
//      2:4 int4 g128: 0.5·(0.5 + 0.25) + 3/128 ≈ 0.40 bytes/weight (3.19 bits/weight).
//
// Every format: a scalar reference GEMV (double, straight from the stored bits), an AVX-512 GEMV chosen at
// run time (kernels/sparse_avx512.cpp; without AVX-512 the reference runs), and for n > 1 tiles of rows
// decoded to f32 + OpenBLAS sgemm. Loading copies the tensors (bit-exact round trip with save).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"
#include "quant/grid.h"

namespace lmp {

struct WeightFormatInfo;

enum class SparseValues { F32, F16 };
inline int value_bytes(SparseValues v) { return v == SparseValues::F32 ? 4 : 2; }
const char* values_name(SparseValues v);  // "f32", "f16"

// Shared by the sparse formats: n == 1 → gemv (fast kernel), n > 1 → decoded row tiles + sgemm.
class SparseMatrixBase : public WeightMatrix {
 public:
  using WeightMatrix::WeightMatrix;
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override { decode_rows(0, rows(), W); }
  virtual void gemv(const float* x, float* y) const = 0;      // y (rows) = W x, fastest kernel
  virtual void gemv_ref(const float* x, float* y) const = 0;  // scalar reference (double accumulation)
  virtual void decode_rows(int64_t r0, int64_t r1, float* W) const = 0;  // rows [r0, r1) → (r1 − r0, cols)
  virtual int64_t nnz() const = 0;  // stored (kept) values
  int64_t n_params() const override { return nnz(); }
};

// ---------------------------------------------------------------------------------------------------
// 1. Unstructured: bitmap + packed values.

class SparseBitmap final : public SparseMatrixBase {
 public:
  // Keeps the nonzeros of W (rows × cols); zeros are pruned positions.
  static std::unique_ptr<SparseBitmap> from_dense(int64_t rows, int64_t cols, const float* W, SparseValues v);
  SparseBitmap(int64_t rows, int64_t cols, SparseValues v, std::vector<uint64_t> bitmap,
               std::vector<int64_t> row_ptr, std::vector<uint8_t> values);
  static std::string format_name(SparseValues v);  // "sparse_bitmap_f32"
  std::string format() const override { return format_name(values_); }
  size_t nbytes() const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;
  void gemv(const float* x, float* y) const override;
  void gemv_ref(const float* x, float* y) const override;
  void decode_rows(int64_t r0, int64_t r1, float* W) const override;
  int64_t nnz() const override { return row_ptr_.back(); }
  // n ≥ kPrefillMin with AVX-512 and cols % 16 == 0: the fused prefill kernel (sparse_bitmap_gemm_avx512);
  // otherwise SparseMatrixBase::matmul (n == 1 GEMV, else decoded row tiles + sgemm).
  void matmul(const float* X, int64_t n, float* Y) const override;
  static constexpr int64_t kPrefillMin = 16;

  int64_t words() const { return (cols() + 63) / 64; }  // u64 bitmap words per row
  SparseValues values_type() const { return values_; }
  const uint64_t* bitmap() const { return bitmap_.data(); }
  const int64_t* row_ptr() const { return row_ptr_.data(); }
  const uint8_t* values() const { return values_data_.data(); }

 private:
  SparseValues values_;
  std::vector<uint64_t> bitmap_;      // (rows, words)
  std::vector<int64_t> row_ptr_;      // (rows + 1)
  std::vector<uint8_t> values_data_;  // (nnz) f32 or f16
};

// ---------------------------------------------------------------------------------------------------
// 2./3. N:M with f32/f16 values or 4-bit codes.

// Bits of one in-group index and bytes of one chunk's indices (16 kept values).
inline int nm_index_bits(int m) { return m == 4 ? 2 : 3; }
inline int nm_chunk_index_bytes(int m) { return 2 * nm_index_bits(m); }
constexpr int kNmChunk = 16;  // kept values per chunk (32 input columns for 2:4 and 4:8)

// Positions of the kept values of W (rows × cols, zeros pruned) for an N:M pattern: kept (rows, cols·n/m)
// column indices in increasing order. A group with fewer than n nonzeros keeps its first zeros as well;
// more than n nonzeros throws lmp::Error naming `what`.
std::vector<int32_t> nm_kept_columns(const float* W, int64_t rows, int64_t cols, int n, int m,
                                     const std::string& what);

class SparseNM final : public SparseMatrixBase {
 public:
  static bool supported(int n, int m) { return (n == 2 && m == 4) || (n == 4 && m == 8); }
  // W must be N:M sparse (zeros pruned); `what` names the layer in errors.
  static std::unique_ptr<SparseNM> from_dense(int64_t rows, int64_t cols, const float* W, int n, int m,
                                              SparseValues v, const std::string& what = "SparseNM");
  SparseNM(int64_t rows, int64_t cols, int n, int m, SparseValues v, std::vector<uint8_t> values,
           std::vector<uint8_t> indices);
  static std::string format_name(int n, int m, SparseValues v);  // "nm2_4_f32"
  std::string format() const override { return format_name(n_, m_, values_); }
  size_t nbytes() const override { return values_data_.size() + indices_.size(); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;
  void gemv(const float* x, float* y) const override;
  void gemv_ref(const float* x, float* y) const override;
  void decode_rows(int64_t r0, int64_t r1, float* W) const override;
  int64_t nnz() const override { return rows() * kept(); }

  int n() const { return n_; }
  int m() const { return m_; }
  int64_t kept() const { return cols() / m_ * n_; }  // per row
  int64_t index_row_bytes() const { return (kept() + kNmChunk - 1) / kNmChunk * nm_chunk_index_bytes(m_); }
  SparseValues values_type() const { return values_; }
  const uint8_t* values() const { return values_data_.data(); }  // (rows, kept)
  const uint8_t* indices() const { return indices_.data(); }     // (rows, index_row_bytes)

 private:
  int n_, m_;
  SparseValues values_;
  std::vector<uint8_t> values_data_, indices_;
};

class SparseNMQ4 final : public SparseMatrixBase {
 public:
  static bool supported(int n, int m, const QuantGrid& g) {
    return SparseNM::supported(n, m) && g.bits == 4 && (g.group == 0 || g.group % 32 == 0);
  }
  // From codes of every position (rows × cols, one byte each; codes at pruned positions are ignored),
  // the N:M kept positions (nm_kept_columns) and per-(row, group) scales/zeros (zeros nullptr when sym).
  static std::unique_ptr<SparseNMQ4> from_codes(int64_t rows, int64_t cols, int n, int m, const QuantGrid& g,
                                                const uint8_t* codes, const std::vector<int32_t>& kept_cols,
                                                const float* scales, const uint8_t* zeros);
  // RTN of the kept values of an N:M sparse W (group parameters from all of the group's weights).
  static std::unique_ptr<SparseNMQ4> quantize(int64_t rows, int64_t cols, const float* W, int n, int m,
                                              const QuantGrid& g, const std::string& what = "SparseNMQ4");
  SparseNMQ4(int64_t rows, int64_t cols, int n, int m, const QuantGrid& g, std::vector<uint8_t> codes,
             std::vector<uint8_t> indices, std::vector<f16_t> scales, std::vector<uint8_t> zeros);
  static std::string format_name(int n, int m, const QuantGrid& g);  // "nm2_4_int4_g128_asym"
  std::string format() const override { return format_name(n_, m_, grid_); }
  size_t nbytes() const override { return codes_.size() + indices_.size() + scales_.size() * 2 + zeros_.size(); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;
  void gemv(const float* x, float* y) const override;
  void gemv_ref(const float* x, float* y) const override;
  void decode_rows(int64_t r0, int64_t r1, float* W) const override;
  int64_t nnz() const override { return rows() * kept(); }

  int n() const { return n_; }
  int m() const { return m_; }
  const QuantGrid& grid() const { return grid_; }
  int64_t kept() const { return cols() / m_ * n_; }
  int64_t chunks() const { return (kept() + kNmChunk - 1) / kNmChunk; }
  int64_t index_row_bytes() const { return chunks() * nm_chunk_index_bytes(m_); }
  int64_t code_row_bytes() const { return chunks() * 8; }
  int64_t ngroups() const { return grid_.ngroups(cols()); }
  GroupParams params(int64_t r, int64_t g) const {
    return {f16_to_f32(scales_[size_t(r * ngroups() + g)]),
            grid_.sym ? 1 << (grid_.bits - 1) : int(zeros_[size_t(r * ngroups() + g)])};
  }
  const uint8_t* codes() const { return codes_.data(); }
  const uint8_t* indices() const { return indices_.data(); }

 private:
  int n_, m_;
  QuantGrid grid_;
  std::vector<uint8_t> codes_, indices_;
  std::vector<f16_t> scales_;
  std::vector<uint8_t> zeros_;
};

// ---------------------------------------------------------------------------------------------------
// Kernels (exposed for tests and benchmarks) and the registry rows.

// Index of value k of a chunk (b bits each) from the chunk's packed index bytes.
inline int nm_chunk_index(const uint8_t* chunk, int k, int b) {
  int bit = k * b, v = chunk[bit / 8] | (bit / 8 + 1 < 2 * b ? chunk[bit / 8 + 1] << 8 : 0);
  return (v >> (bit % 8)) & ((1 << b) - 1);
}

bool sparse_simd_available();          // AVX-512 F/BW/VL present (the fast kernels run)
void sparse_force_reference(bool on);  // test/bench hook: gemv() runs the scalar reference
bool sparse_simd_in_use();             // available and not forced off

// AVX-512 GEMVs (sparse_avx512.cpp); rows [r0, r1).
void sparse_bitmap_gemv_avx512(const SparseBitmap& w, const float* x, float* y, int64_t r0, int64_t r1);
// Prefill: Y (n, rows; ld rows) for rows [r0, r1) from X (n, cols); needs cols % 16 == 0
// (kernels/sparse_gemm_avx512.cpp, "load as sparse, compute as dense").
void sparse_bitmap_gemm_avx512(const SparseBitmap& w, const float* X, int64_t n, float* Y, int64_t r0, int64_t r1);
void sparse_nm_gemv_avx512(const SparseNM& w, const float* x, float* y, int64_t r0, int64_t r1);
void sparse_nmq4_gemv_avx512(const SparseNMQ4& w, const float* x, float* y, int64_t r0, int64_t r1);

// Registry rows for kernels/weight_registry.cpp (one per format name).
const std::vector<WeightFormatInfo>& sparse_weight_formats();

}  // namespace lmp

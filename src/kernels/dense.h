// Dense weight formats: f32 (4 bytes/weight) and f16 (2 bytes/weight), computed in f32.
// Decode (n == 1) runs hand-written AVX2 GEMVs threaded over rows; prefill (n > 1) runs OpenBLAS sgemm
// (f16 tiles are widened to f32 first). A naive reference lives beside each fast path for tests.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "core/half.h"
#include "kernels/weight.h"

namespace lmp {

class DenseF32 final : public WeightMatrix {
 public:
  // Owns a copy of W (rows × cols).
  DenseF32(int64_t rows, int64_t cols, std::vector<float> w);
  // Borrows W; keeper keeps the memory alive (e.g. the mapped checkpoint).
  DenseF32(int64_t rows, int64_t cols, const float* w, std::shared_ptr<const void> keeper);
  std::string format() const override { return "f32"; }
  size_t nbytes() const override { return size_t(rows() * cols()) * 4; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;
  const float* data() const { return w_; }

 private:
  std::vector<float> own_;
  std::shared_ptr<const void> keeper_;
  const float* w_;
};

class DenseF16 final : public WeightMatrix {
 public:
  DenseF16(int64_t rows, int64_t cols, std::vector<f16_t> w);
  DenseF16(int64_t rows, int64_t cols, const f16_t* w, std::shared_ptr<const void> keeper);
  static std::unique_ptr<DenseF16> from_f32(int64_t rows, int64_t cols, const float* w);
  std::string format() const override { return "f16"; }
  size_t nbytes() const override { return size_t(rows() * cols()) * 2; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

 private:
  std::vector<f16_t> own_;
  std::shared_ptr<const void> keeper_;
  const f16_t* w_;
};

// Kernels, exposed for tests and benchmarks. y (rows) = W (rows × cols) · x.
void gemv_f32_ref(const float* W, const float* x, float* y, int64_t rows, int64_t cols);
void gemv_f32(const float* W, const float* x, float* y, int64_t rows, int64_t cols);
void gemv_f16_ref(const f16_t* W, const float* x, float* y, int64_t rows, int64_t cols);
void gemv_f16(const f16_t* W, const float* x, float* y, int64_t rows, int64_t cols);
// Y (n, rows) = X (n, cols) · Wᵀ through OpenBLAS.
// Y (n, rows) = X (n, cols) · Ŵᵀ for a format that decodes one row at a time into f32 (decode_row(r, w)):
// n ≤ 4 decodes each row once and dots it with every token (AVX2), larger n decodes tiles of 256 rows and
// calls sgemm. Threaded over rows.
void decoded_rows_matmul(int64_t rows, int64_t cols, const std::function<void(int64_t r, float* w)>& decode_row,
                         const float* X, int64_t n, float* Y);
void gemm_f32(const float* X, const float* W, float* Y, int64_t n, int64_t rows, int64_t cols);

// A stored format whose kernel is "decode a row to f32, then dot" (lookup-table codes: FP4/FP8, OliVe): it
// supplies decode_row; matmul runs decoded_rows_matmul and dequantize decodes every row (threaded).
class RowDecodedMatrix : public WeightMatrix {
 public:
  using WeightMatrix::WeightMatrix;
  // Row r dequantized into w (cols).
  virtual void decode_row(int64_t r, float* w) const = 0;
  void matmul(const float* X, int64_t n, float* Y) const final;
  void dequantize(float* W) const final;
};

}  // namespace lmp

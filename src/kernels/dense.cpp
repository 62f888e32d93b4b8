#include "kernels/dense.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include "core/error.h"
#include "io/safetensors.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// f32 kernels

void gemv_f32_ref(const float* W, const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t c = 0; c < cols; c++) s += double(W[r * cols + c]) * x[c];
    y[r] = float(s);
  }
}

static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float dot_f32(const float* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t c = 0;
  for (; c + 32 <= n; c += 32) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 16), _mm256_loadu_ps(x + c + 16), a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c + 24), _mm256_loadu_ps(x + c + 24), a3);
  }
  for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + c), _mm256_loadu_ps(x + c), a0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; c < n; c++) s += w[c] * x[c];
  return s;
}

void gemv_f32(const float* W, const float* x, float* y, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (int64_t r = 0; r < rows; r++) y[r] = dot_f32(W + r * cols, x, cols);
}

void gemm_f32(const float* X, const float* W, float* Y, int64_t n, int64_t rows, int64_t cols) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(rows), int(cols), 1.0f, X, int(cols), W,
              int(cols), 0.0f, Y, int(rows));
}

// ---------------------------------------------------------------------------------------------------
// f16 kernels

void gemv_f16_ref(const f16_t* W, const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r++) {
    double s = 0;
    for (int64_t c = 0; c < cols; c++) s += double(f16_to_f32(W[r * cols + c])) * x[c];
    y[r] = float(s);
  }
}

static inline float dot_f16(const f16_t* w, const float* x, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t c = 0;
  auto ld = [](const f16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  for (; c + 32 <= n; c += 32) {
    a0 = _mm256_fmadd_ps(ld(w + c), _mm256_loadu_ps(x + c), a0);
    a1 = _mm256_fmadd_ps(ld(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);
    a2 = _mm256_fmadd_ps(ld(w + c + 16), _mm256_loadu_ps(x + c + 16), a2);
    a3 = _mm256_fmadd_ps(ld(w + c + 24), _mm256_loadu_ps(x + c + 24), a3);
  }
  for (; c + 8 <= n; c += 8) a0 = _mm256_fmadd_ps(ld(w + c), _mm256_loadu_ps(x + c), a0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (; c < n; c++) s += f16_to_f32(w[c]) * x[c];
  return s;
}

void gemv_f16(const f16_t* W, const float* x, float* y, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (int64_t r = 0; r < rows; r++) y[r] = dot_f16(W + r * cols, x, cols);
}

// ---------------------------------------------------------------------------------------------------
// DenseF32

DenseF32::DenseF32(int64_t rows, int64_t cols, std::vector<float> w)
    : WeightMatrix(rows, cols), own_(std::move(w)), w_(own_.data()) {
  check(int64_t(own_.size()) == rows * cols, "DenseF32: {} values for a {}x{} matrix", own_.size(), rows, cols);
}

DenseF32::DenseF32(int64_t rows, int64_t cols, const float* w, std::shared_ptr<const void> keeper)
    : WeightMatrix(rows, cols), keeper_(std::move(keeper)), w_(w) {}

void DenseF32::matmul(const float* X, int64_t n, float* Y) const {
  if (n == 1) return gemv_f32(w_, X, Y, rows(), cols());
  gemm_f32(X, w_, Y, n, rows(), cols());
}

void DenseF32::dequantize(float* W) const { std::copy(w_, w_ + rows() * cols(), W); }

nlohmann::json DenseF32::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add_f32(prefix + ".weight", {rows(), cols()}, w_);
  return {{"format", "f32"}};
}

// ---------------------------------------------------------------------------------------------------
// DenseF16

DenseF16::DenseF16(int64_t rows, int64_t cols, std::vector<f16_t> w)
    : WeightMatrix(rows, cols), own_(std::move(w)), w_(own_.data()) {}

DenseF16::DenseF16(int64_t rows, int64_t cols, const f16_t* w, std::shared_ptr<const void> keeper)
    : WeightMatrix(rows, cols), keeper_(std::move(keeper)), w_(w) {}

std::unique_ptr<DenseF16> DenseF16::from_f32(int64_t rows, int64_t cols, const float* w) {
  std::vector<f16_t> h(size_t(rows * cols));
  for (size_t i = 0; i < h.size(); i++) h[i] = f32_to_f16(w[i]);
  return std::make_unique<DenseF16>(rows, cols, std::move(h));
}

void DenseF16::matmul(const float* X, int64_t n, float* Y) const {
  if (n == 1) return gemv_f16(w_, X, Y, rows(), cols());
  // Widen a tile of rows to f32, then one sgemm per tile writes Y[:, tile] (ldc = rows).
  const int64_t tile = 256;
  std::vector<float> Wt(size_t(tile * cols()));
  for (int64_t r0 = 0; r0 < rows(); r0 += tile) {
    int64_t nr = std::min(tile, rows() - r0);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nr * cols(); i++) Wt[i] = f16_to_f32(w_[r0 * cols() + i]);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(nr), int(cols()), 1.0f, X, int(cols()),
                Wt.data(), int(cols()), 0.0f, Y + r0, int(rows()));
  }
}

void DenseF16::dequantize(float* W) const {
  for (int64_t i = 0; i < rows() * cols(); i++) W[i] = f16_to_f32(w_[i]);
}

nlohmann::json DenseF16::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".weight", DType::F16, {rows(), cols()}, w_, nbytes());
  return {{"format", "f16"}};
}

void decoded_rows_matmul(int64_t R, int64_t C, const std::function<void(int64_t r, float* w)>& decode_row,
                         const float* X, int64_t n, float* Y) {
  if (n <= 4) {  // decode: each row decoded once, dotted with every token
#pragma omp parallel if (R * C > 65536)
    {
      std::vector<float> w(static_cast<size_t>(C));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < R; r++) {
        decode_row(r, w.data());
        for (int64_t t = 0; t < n; t++) Y[t * R + r] = dot_f32(w.data(), X + t * C, C);
      }
    }
    return;
  }
  const int64_t tile = 256;
  std::vector<float> Wt(size_t(std::min(tile, R) * C));
  for (int64_t r0 = 0; r0 < R; r0 += tile) {
    const int64_t nr = std::min(tile, R - r0);
#pragma omp parallel for schedule(static) if (nr * C > 65536)
    for (int64_t i = 0; i < nr; i++) decode_row(r0 + i, Wt.data() + i * C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(nr), int(C), 1.0f, X, int(C), Wt.data(), int(C),
                0.0f, Y + r0, int(R));
  }
}

void RowDecodedMatrix::matmul(const float* X, int64_t n, float* Y) const {
  decoded_rows_matmul(rows(), cols(), [this](int64_t r, float* w) { decode_row(r, w); }, X, n, Y);
}

void RowDecodedMatrix::dequantize(float* W) const {
#pragma omp parallel for schedule(static) if (rows() * cols() > 65536)
  for (int64_t r = 0; r < rows(); r++) decode_row(r, W + r * cols());
}

}  // namespace lmp

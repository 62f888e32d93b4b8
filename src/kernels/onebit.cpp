#include "kernels/onebit.h"

#include <immintrin.h>

#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

namespace {

// kSignMask[b][j] = 0x80000000 when bit j of b is clear (weight −1: flip the sign of u_j), else 0.
struct SignMasks {
  alignas(32) uint32_t m[256][8];
  SignMasks() {
    for (int b = 0; b < 256; b++)
      for (int j = 0; j < 8; j++) m[b][j] = (b >> j & 1) ? 0u : 0x80000000u;
  }
};
const SignMasks& sign_masks() {
  static const SignMasks t;
  return t;
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Σ_j S_j · u_j over one packed row of nb bytes (u padded to 8·nb).
inline float sign_dot(const uint8_t* p, const float* u, int64_t nb, const SignMasks& t) {
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 1 < nb; k += 2) {
    __m256 m0 = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.m[p[k]])));
    __m256 m1 = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.m[p[k + 1]])));
    a0 = _mm256_add_ps(a0, _mm256_xor_ps(_mm256_loadu_ps(u + 8 * k), m0));
    a1 = _mm256_add_ps(a1, _mm256_xor_ps(_mm256_loadu_ps(u + 8 * k + 8), m1));
  }
  if (k < nb) {
    __m256 m0 = _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.m[p[k]])));
    a0 = _mm256_add_ps(a0, _mm256_xor_ps(_mm256_loadu_ps(u + 8 * k), m0));
  }
  return hsum(_mm256_add_ps(a0, a1));
}

}  // namespace

OneBitMatrix::OneBitMatrix(int64_t rows, int64_t cols, const uint8_t* signs, const float* g, const float* h)
    : WeightMatrix(rows, cols) {
  check(rows >= 1 && cols >= 1, "onebit: shape {} x {} is empty", rows, cols);
  packed_.assign(size_t(rows * row_bytes()), 0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      if (signs[r * cols + c]) packed_[size_t(r * row_bytes() + c / 8)] |= uint8_t(1 << (c % 8));
  for (int64_t r = 0; r < rows; r++) g16_.push_back(f32_to_f16(g[r]));
  for (int64_t c = 0; c < cols; c++) h16_.push_back(f32_to_f16(h[c]));
  widen();
}

OneBitMatrix::OneBitMatrix(int64_t rows, int64_t cols, std::vector<uint8_t> packed, std::vector<f16_t> g,
                           std::vector<f16_t> h)
    : WeightMatrix(rows, cols), packed_(std::move(packed)), g16_(std::move(g)), h16_(std::move(h)) {
  check(packed_.size() == size_t(rows * row_bytes()) && g16_.size() == size_t(rows) && h16_.size() == size_t(cols),
        "onebit: inconsistent sizes for a {} x {} matrix", rows, cols);
  widen();
}

void OneBitMatrix::widen() {
  g_.resize(g16_.size());
  h_.resize(h16_.size());
  for (size_t i = 0; i < g_.size(); i++) g_[i] = f16_to_f32(g16_[i]);
  for (size_t i = 0; i < h_.size(); i++) h_[i] = f16_to_f32(h16_[i]);
}

void OneBitMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols(), nb = row_bytes();
  const SignMasks& t = sign_masks();
  thread_local std::vector<float> u;
  u.assign(size_t(8 * nb), 0.0f);
  for (int64_t i = 0; i < n; i++) {
    const float* x = X + i * C;
    for (int64_t c = 0; c < C; c++) u[size_t(c)] = h_[size_t(c)] * x[c];
    const float* up = u.data();
    float* y = Y + i * R;
#pragma omp parallel for schedule(static) if (R * C > 262144)
    for (int64_t r = 0; r < R; r++) y[r] = g_[size_t(r)] * sign_dot(packed_.data() + r * nb, up, nb, t);
  }
}

void OneBitMatrix::matmul_ref(const float* X, int64_t n, float* Y) const {
  for (int64_t i = 0; i < n; i++)
    for (int64_t r = 0; r < rows(); r++) {
      double s = 0;
      for (int64_t c = 0; c < cols(); c++)
        s += (sign(r, c) ? 1.0 : -1.0) * double(h(c)) * double(X[i * cols() + c]);
      Y[i * rows() + r] = float(double(g(r)) * s);
    }
}

void OneBitMatrix::dequantize(float* W) const {
  for (int64_t r = 0; r < rows(); r++)
    for (int64_t c = 0; c < cols(); c++) W[r * cols() + c] = (sign(r, c) ? g(r) : -g(r)) * h(c);
}

nlohmann::json OneBitMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".signs", DType::U8, {rows(), row_bytes()}, packed_.data(), packed_.size());
  w.add(prefix + ".g", DType::F16, {rows()}, g16_.data(), g16_.size() * 2);
  w.add(prefix + ".h", DType::F16, {cols()}, h16_.data(), h16_.size() * 2);
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}};
}

WeightPtr load_onebit(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: onebit spec {} lacks rows/cols ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows >= 1 && cols >= 1, "{}: {}: unsupported onebit spec {}", src.where(), prefix, spec.dump());
  const TensorView& ts = src.get(prefix + ".signs");
  const TensorView& tg = src.get(prefix + ".g");
  const TensorView& th = src.get(prefix + ".h");
  expect_tensor(src, ts, DType::U8, {rows, (cols + 7) / 8});
  expect_tensor(src, tg, DType::F16, {rows});
  expect_tensor(src, th, DType::F16, {cols});
  std::vector<uint8_t> packed(ts.data, ts.data + ts.nbytes);
  std::vector<f16_t> g(static_cast<size_t>(rows)), h(static_cast<size_t>(cols));
  std::memcpy(g.data(), tg.data, tg.nbytes);
  std::memcpy(h.data(), th.data, th.nbytes);
  return std::make_unique<OneBitMatrix>(rows, cols, std::move(packed), std::move(g), std::move(h));
}

}  // namespace lmp

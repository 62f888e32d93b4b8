#include "kernels/lut.h"

#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

namespace {

// Y (n, rows) += X · Sᵀ for the optional side matrix.
void add_side(const WeightMatrix* s, const float* X, int64_t n, float* Y) {
  if (!s) return;
  std::vector<float> t(size_t(n * s->rows()));
  s->matmul(X, n, t.data());
  for (size_t i = 0; i < t.size(); i++) Y[i] += t[i];
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// LutMatrix

LutMatrix::LutMatrix(int64_t rows, int64_t cols, int bits, const uint8_t* codes, const float* lut, WeightPtr sparse)
    : WeightMatrix(rows, cols), bits_(bits), sparse_(std::move(sparse)) {
  check(supported(bits), "lut: {} bits is not supported (1..8)", bits);
  const int K = 1 << bits;
  packed_.assign(size_t(rows * row_bytes() + 4), 0);
  for (int64_t r = 0; r < rows; r++) {
    uint8_t* p = packed_.data() + r * row_bytes();
    for (int64_t c = 0; c < cols; c++) {
      int code = codes[r * cols + c];
      check(code < K, "lut: code {} out of range for {} bits", code, bits);
      for (int b = 0; b < bits; b++)
        if (code >> b & 1) p[(c * bits + b) / 8] |= uint8_t(1 << ((c * bits + b) % 8));
    }
  }
  lut_.resize(size_t(rows * K));
  for (size_t i = 0; i < lut_.size(); i++) lut_[i] = f32_to_f16(lut[i]);
  if (sparse_) check(sparse_->rows() == rows && sparse_->cols() == cols, "lut: side matrix shape mismatch");
}

LutMatrix::LutMatrix(int64_t rows, int64_t cols, int bits, std::vector<uint8_t> packed, std::vector<f16_t> lut,
                     WeightPtr sparse)
    : WeightMatrix(rows, cols), bits_(bits), packed_(std::move(packed)), lut_(std::move(lut)), sparse_(std::move(sparse)) {
  packed_.resize(size_t(rows * row_bytes() + 4), 0);
}

size_t LutMatrix::nbytes() const {
  return size_t(rows() * row_bytes()) + lut_.size() * 2 + (sparse_ ? sparse_->nbytes() : 0);
}

void LutMatrix::unpack_row(int64_t r, uint8_t* q) const {
  const uint8_t* p = packed_.data() + r * row_bytes();
  const uint32_t mask = (1u << bits_) - 1;
  for (int64_t c = 0; c < cols(); c++) {
    const int64_t bit = c * bits_;
    uint32_t v;
    std::memcpy(&v, p + bit / 8, 4);  // the 4 padding bytes make this read safe on the last row
    q[c] = uint8_t((v >> (bit % 8)) & mask);
  }
}

void LutMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols();
  const int K = 1 << bits_;
#pragma omp parallel if (R * C * n > 65536)
  {
    std::vector<uint8_t> q(static_cast<size_t>(C));
    std::vector<float> s(static_cast<size_t>(K));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; r++) {
      unpack_row(r, q.data());
      float lut[256];
      for (int k = 0; k < K; k++) lut[k] = f16_to_f32(lut_[size_t(r * K + k)]);
      for (int64_t t = 0; t < n; t++) {
        const float* x = X + t * C;
        std::fill(s.begin(), s.end(), 0.0f);
        for (int64_t c = 0; c < C; c++) s[q[size_t(c)]] += x[c];  // group x by code
        float y = 0;
        for (int k = 0; k < K; k++) y += lut[k] * s[size_t(k)];
        Y[t * R + r] = y;
      }
    }
  }
  add_side(sparse_.get(), X, n, Y);
}

void LutMatrix::matmul_ref(const float* X, int64_t n, float* Y) const {
  std::vector<uint8_t> q(static_cast<size_t>(cols()));
  std::vector<float> S;
  if (sparse_) S = sparse_->dense();
  for (int64_t r = 0; r < rows(); r++) {
    unpack_row(r, q.data());
    for (int64_t t = 0; t < n; t++) {
      double y = 0;
      for (int64_t c = 0; c < cols(); c++) {
        double w = lut(r, q[size_t(c)]) + (sparse_ ? S[size_t(r * cols() + c)] : 0.0f);
        y += w * double(X[t * cols() + c]);
      }
      Y[t * rows() + r] = float(y);
    }
  }
}

void LutMatrix::dequantize(float* W) const {
  std::vector<uint8_t> q(static_cast<size_t>(cols()));
  for (int64_t r = 0; r < rows(); r++) {
    unpack_row(r, q.data());
    for (int64_t c = 0; c < cols(); c++) W[r * cols() + c] = lut(r, q[size_t(c)]);
  }
  if (sparse_) {
    std::vector<float> S = sparse_->dense();
    for (size_t i = 0; i < S.size(); i++) W[i] += S[i];
  }
}

nlohmann::json LutMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".codes", DType::U8, {rows(), row_bytes()}, packed_.data(), size_t(rows() * row_bytes()));
  w.add(prefix + ".lut", DType::F16, {rows(), int64_t(1) << bits_}, lut_.data(), lut_.size() * 2);
  nlohmann::json j = {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"bits", bits_}};
  if (sparse_) j["sparse"] = sparse_->save(w, prefix + ".sparse");
  return j;
}

WeightPtr load_lut(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0;
  int bits = 0;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    bits = spec.at("bits").get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: lut spec {} lacks rows/cols/bits ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows > 0 && cols > 0 && LutMatrix::supported(bits), "{}: {}: unsupported lut spec {}", src.where(), prefix,
        spec.dump());
  const TensorView& tc = src.get(prefix + ".codes");
  const TensorView& tl = src.get(prefix + ".lut");
  const int64_t rb = (cols * bits + 7) / 8;
  expect_tensor(src, tc, DType::U8, {rows, rb});
  expect_tensor(src, tl, DType::F16, {rows, int64_t(1) << bits});
  std::vector<uint8_t> packed(tc.data, tc.data + tc.nbytes);
  std::vector<f16_t> lut(size_t(tl.numel()));
  std::memcpy(lut.data(), tl.data, tl.nbytes);
  WeightPtr sparse;
  if (spec.contains("sparse")) sparse = load_weight(src, prefix + ".sparse", spec["sparse"]);
  check(!sparse || (sparse->rows() == rows && sparse->cols() == cols), "{}: {}: lut side matrix has the wrong shape",
        src.where(), prefix);
  return std::make_unique<LutMatrix>(rows, cols, bits, std::move(packed), std::move(lut), std::move(sparse));
}

// ---------------------------------------------------------------------------------------------------
// BcqMatrix

BcqMatrix::BcqMatrix(int64_t rows, int64_t cols, int q, int group, const uint8_t* signs, const float* alpha)
    : WeightMatrix(rows, cols), q_(q), group_(group) {
  check(supported(q, group), "bcq: {} bit-planes with group {} is not supported (q 1..8, group a multiple of 8)", q,
        group);
  planes_.assign(size_t(q * rows * row_bytes()), 0);
  for (int64_t i = 0; i < q * rows; i++)
    for (int64_t c = 0; c < cols; c++)
      if (signs[i * cols + c]) planes_[size_t(i * row_bytes() + c / 8)] |= uint8_t(1 << (c % 8));
  alpha_.resize(size_t(q * rows * ngroups()));
  for (size_t i = 0; i < alpha_.size(); i++) alpha_[i] = f32_to_f16(alpha[i]);
}

BcqMatrix::BcqMatrix(int64_t rows, int64_t cols, int q, int group, std::vector<uint8_t> planes,
                     std::vector<f16_t> alpha)
    : WeightMatrix(rows, cols), q_(q), group_(group), planes_(std::move(planes)), alpha_(std::move(alpha)) {}

void BcqMatrix::dequantize(float* W) const {
  const int64_t R = rows(), C = cols(), gs = group_size();
  std::fill(W, W + R * C, 0.0f);
  for (int i = 0; i < q_; i++)
    for (int64_t r = 0; r < R; r++) {
      const uint8_t* p = planes_.data() + (i * R + r) * row_bytes();
      for (int64_t c = 0; c < C; c++) {
        float a = alpha(i, r, c / gs);
        W[r * C + c] += (p[c / 8] >> (c % 8) & 1) ? a : -a;
      }
    }
}

void BcqMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols(), nb = row_bytes(), gb = group_size() / 8, ng = ngroups();
  // gb = bytes (runs of 8 inputs) per group; with group 0 a group is the whole row: ceil(C/8) bytes.
  const int64_t gbytes = group_ ? gb : nb;
  std::vector<float> T(size_t(nb * 256));
  for (int64_t t = 0; t < n; t++) {
    const float* x = X + t * C;
    for (int64_t k = 0; k < nb; k++) {  // the 256 signed sums of inputs 8k .. 8k+7
      float xv[8], sum = 0;
      for (int j = 0; j < 8; j++) {
        xv[j] = 8 * k + j < C ? x[8 * k + j] : 0.0f;
        sum += xv[j];
      }
      float* Tk = T.data() + k * 256;
      Tk[0] = -sum;
      for (int m = 1; m < 256; m++) Tk[m] = Tk[m & (m - 1)] + 2 * xv[__builtin_ctz(unsigned(m))];
    }
#pragma omp parallel for schedule(static) if (R * C > 65536)
    for (int64_t r = 0; r < R; r++) {
      float y = 0;
      for (int i = 0; i < q_; i++) {
        const uint8_t* p = planes_.data() + (i * R + r) * nb;
        const f16_t* a = alpha_.data() + (i * R + r) * ng;
        for (int64_t g = 0; g < ng; g++) {
          const int64_t k1 = std::min(nb, (g + 1) * gbytes);
          float s = 0;
          for (int64_t k = g * gbytes; k < k1; k++) s += T[size_t(k * 256 + p[k])];
          y += f16_to_f32(a[g]) * s;
        }
      }
      Y[t * R + r] = y;
    }
  }
}

void BcqMatrix::matmul_ref(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols(), gs = group_size();
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double y = 0;
      for (int i = 0; i < q_; i++) {
        const uint8_t* p = planes_.data() + (i * R + r) * row_bytes();
        for (int64_t c = 0; c < C; c++) {
          double b = (p[c / 8] >> (c % 8) & 1) ? 1.0 : -1.0;
          y += double(alpha(i, r, c / gs)) * b * double(X[t * C + c]);
        }
      }
      Y[t * R + r] = float(y);
    }
}

nlohmann::json BcqMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".planes", DType::U8, {q_, rows(), row_bytes()}, planes_.data(), planes_.size());
  w.add(prefix + ".alpha", DType::F16, {q_, rows(), ngroups()}, alpha_.data(), alpha_.size() * 2);
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"q", q_}, {"group", group_}};
}

WeightPtr load_bcq(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0;
  int q = 0, group = 0;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    q = spec.at("q").get<int>();
    group = spec.at("group").get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: bcq spec {} lacks rows/cols/q/group ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows > 0 && cols > 0 && BcqMatrix::supported(q, group), "{}: {}: unsupported bcq spec {}", src.where(), prefix,
        spec.dump());
  const int64_t gs = group ? group : cols, ng = (cols + gs - 1) / gs;
  const TensorView& tp = src.get(prefix + ".planes");
  const TensorView& ta = src.get(prefix + ".alpha");
  expect_tensor(src, tp, DType::U8, {q, rows, (cols + 7) / 8});
  expect_tensor(src, ta, DType::F16, {q, rows, ng});
  std::vector<uint8_t> planes(tp.data, tp.data + tp.nbytes);
  std::vector<f16_t> alpha(size_t(ta.numel()));
  std::memcpy(alpha.data(), ta.data, ta.nbytes);
  return std::make_unique<BcqMatrix>(rows, cols, q, group, std::move(planes), std::move(alpha));
}

}  // namespace lmp

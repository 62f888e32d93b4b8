// N:M sparse formats (sparse.h 2. and 3.): f32/f16 values or 4-bit codes + packed in-group indices.
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/qint.h"
#include "kernels/sparse.h"

namespace lmp {

// From sparse.cpp.
std::vector<uint8_t> sparse_tensor_bytes(const TensorSource& src, const std::string& prefix, const char* part,
                                         DType dt, std::vector<int64_t> shape);
void sparse_spec_shape(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec,
                       const std::string& want, int64_t* rows, int64_t* cols);

static void check_nm_shape(int64_t cols, int n, int m, const std::string& what) {
  check(SparseNM::supported(n, m), "{}: {}:{} has no stored N:M format (2:4 and 4:8 do)", what, n, m);
  check(cols % m == 0, "{}: {} input columns are not divisible by M = {} ({}:{} sparsity)", what, cols, m, n, m);
}

std::vector<int32_t> nm_kept_columns(const float* W, int64_t rows, int64_t cols, int n, int m,
                                     const std::string& what) {
  check(n >= 1 && n < m && cols % m == 0, "{}: {} columns cannot hold {}:{} sparsity", what, cols, n, m);
  const int64_t kept = cols / m * n;
  std::vector<int32_t> kc(size_t(rows * kept));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < cols / m; g++) {
      const float* w = W + r * cols + g * m;
      int nz = 0;
      for (int j = 0; j < m; j++) nz += w[j] != 0;
      check(nz <= n, "{}: row {}, columns {}..{} hold {} nonzeros, more than N = {} of {}:{}", what, r, g * m,
            g * m + m - 1, nz, n, n, m);
      int zeros_to_keep = n - nz, k = 0;
      for (int j = 0; j < m; j++)
        if (w[j] != 0 || (zeros_to_keep > 0 && zeros_to_keep--)) kc[size_t(r * kept + g * n + k++)] = int32_t(g * m + j);
    }
  return kc;
}

// Packs the in-group positions of kept columns kc (kept per row) into chunks of 16 (sparse.h layout).
static std::vector<uint8_t> pack_indices(const std::vector<int32_t>& kc, int64_t rows, int64_t kept, int n, int m) {
  const int b = nm_index_bits(m), cb = nm_chunk_index_bytes(m);
  const int64_t rb = (kept + kNmChunk - 1) / kNmChunk * cb;
  std::vector<uint8_t> idx(size_t(rows * rb), 0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < kept; k++) {
      const int pos = kc[size_t(r * kept + k)] - int(k / n * m);
      const int64_t bit = (k % kNmChunk) * b;
      uint8_t* chunk = idx.data() + r * rb + k / kNmChunk * cb;
      const int v = pos << (bit % 8);
      chunk[bit / 8] |= uint8_t(v);
      if (v >> 8) chunk[bit / 8 + 1] |= uint8_t(v >> 8);
    }
  return idx;
}

// Input column of kept value k of a row from the row's packed indices.
static int64_t kept_column(const uint8_t* row_idx, int64_t k, int n, int m) {
  const int b = nm_index_bits(m);
  return k / n * m + nm_chunk_index(row_idx + k / kNmChunk * nm_chunk_index_bytes(m), int(k % kNmChunk), b);
}

// ---------------------------------------------------------------------------------------------------
// SparseNM

std::string SparseNM::format_name(int n, int m, SparseValues v) {
  return fmt::format("nm{}_{}_{}", n, m, values_name(v));
}

SparseNM::SparseNM(int64_t rows, int64_t cols, int n, int m, SparseValues v, std::vector<uint8_t> values,
                   std::vector<uint8_t> indices)
    : SparseMatrixBase(rows, cols), n_(n), m_(m), values_(v), values_data_(std::move(values)),
      indices_(std::move(indices)) {
  check_nm_shape(cols, n, m, "SparseNM");
  check(int64_t(values_data_.size()) == rows * kept() * value_bytes(v), "SparseNM: {} value bytes, want {}",
        values_data_.size(), rows * kept() * value_bytes(v));
  check(int64_t(indices_.size()) == rows * index_row_bytes(), "SparseNM: {} index bytes, want {}", indices_.size(),
        rows * index_row_bytes());
  const int b = nm_index_bits(m);
  for (int64_t r = 0; r < rows; r++)  // positions inside a group strictly increase (a valid N:M pattern)
    for (int64_t k = 1; k < kept(); k++)
      if (k % n)
        check(nm_chunk_index(indices_.data() + r * index_row_bytes() + k / kNmChunk * nm_chunk_index_bytes(m),
                             int(k % kNmChunk), b) >
                  nm_chunk_index(indices_.data() + r * index_row_bytes() + (k - 1) / kNmChunk * nm_chunk_index_bytes(m),
                                 int((k - 1) % kNmChunk), b),
              "SparseNM: row {}: in-group positions of values {} and {} do not increase", r, k - 1, k);
}

std::unique_ptr<SparseNM> SparseNM::from_dense(int64_t rows, int64_t cols, const float* W, int n, int m,
                                               SparseValues v, const std::string& what) {
  check_nm_shape(cols, n, m, what);
  const int64_t kept = cols / m * n;
  std::vector<int32_t> kc = nm_kept_columns(W, rows, cols, n, m, what);
  std::vector<uint8_t> vals(size_t(rows * kept * value_bytes(v)));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < kept; k++) {
      const float w = W[r * cols + kc[size_t(r * kept + k)]];
      if (v == SparseValues::F32) {
        std::memcpy(vals.data() + 4 * (r * kept + k), &w, 4);
      } else {
        f16_t h = f32_to_f16(w);
        std::memcpy(vals.data() + 2 * (r * kept + k), &h, 2);
      }
    }
  return std::make_unique<SparseNM>(rows, cols, n, m, v, std::move(vals), pack_indices(kc, rows, kept, n, m));
}

static float nm_value(const uint8_t* p, SparseValues v, int64_t i) {
  if (v == SparseValues::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  f16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return f16_to_f32(h);
}

void SparseNM::decode_rows(int64_t r0, int64_t r1, float* W) const {
  for (int64_t r = r0; r < r1; r++) {
    float* out = W + (r - r0) * cols();
    std::fill(out, out + cols(), 0.0f);
    for (int64_t k = 0; k < kept(); k++)
      out[kept_column(indices() + r * index_row_bytes(), k, n_, m_)] = nm_value(values(), values_, r * kept() + k);
  }
}

void SparseNM::gemv_ref(const float* x, float* y) const {
  for (int64_t r = 0; r < rows(); r++) {
    double s = 0;
    for (int64_t k = 0; k < kept(); k++)
      s += double(nm_value(values(), values_, r * kept() + k)) * x[kept_column(indices() + r * index_row_bytes(), k, n_, m_)];
    y[r] = float(s);
  }
}

void SparseNM::gemv(const float* x, float* y) const {
  if (!sparse_simd_in_use()) return gemv_ref(x, y);
#pragma omp parallel for schedule(static) if (rows() * cols() > 32768)
  for (int64_t r0 = 0; r0 < rows(); r0 += 16) sparse_nm_gemv_avx512(*this, x, y, r0, std::min(rows(), r0 + 16));
}

nlohmann::json SparseNM::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".values", values_ == SparseValues::F32 ? DType::F32 : DType::F16, {rows(), kept()},
        values_data_.data(), values_data_.size());
  w.add(prefix + ".indices", DType::U8, {rows(), index_row_bytes()}, indices_.data(), indices_.size());
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"n", n_}, {"m", m_}};
}

static void spec_nm(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec, int* n, int* m) {
  try {
    *n = spec.at("n").get<int>();
    *m = spec.at("m").get<int>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: N:M spec {} lacks n/m ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(SparseNM::supported(*n, *m), "{}: {}: unsupported N:M pattern {}:{} in {}", src.where(), prefix, *n, *m,
        spec.dump());
}

WeightPtr load_nm(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int n, m;
  spec_nm(src, prefix, spec, &n, &m);
  std::string fmt_name = spec.value("format", "");
  SparseValues v = fmt_name.size() > 3 && fmt_name.substr(fmt_name.size() - 3) == "f16" ? SparseValues::F16
                                                                                        : SparseValues::F32;
  int64_t rows, cols;
  sparse_spec_shape(src, prefix, spec, SparseNM::format_name(n, m, v), &rows, &cols);
  check(cols % m == 0, "{}: {}: {} columns not divisible by {}", src.where(), prefix, cols, m);
  const int64_t kept = cols / m * n, rb = (kept + kNmChunk - 1) / kNmChunk * nm_chunk_index_bytes(m);
  auto vals = sparse_tensor_bytes(src, prefix, "values", v == SparseValues::F32 ? DType::F32 : DType::F16,
                                  {rows, kept});
  auto idx = sparse_tensor_bytes(src, prefix, "indices", DType::U8, {rows, rb});
  try {
    return std::make_unique<SparseNM>(rows, cols, n, m, v, std::move(vals), std::move(idx));
  } catch (const Error& e) {
    fail("{}: {}: {}", src.where(), prefix, e.what());
  }
}

// ---------------------------------------------------------------------------------------------------
// SparseNMQ4

std::string SparseNMQ4::format_name(int n, int m, const QuantGrid& g) {
  return fmt::format("nm{}_{}_{}", n, m, QIntMatrix::format_name(g));
}

SparseNMQ4::SparseNMQ4(int64_t rows, int64_t cols, int n, int m, const QuantGrid& g, std::vector<uint8_t> codes,
                       std::vector<uint8_t> indices, std::vector<f16_t> scales, std::vector<uint8_t> zeros)
    : SparseMatrixBase(rows, cols), n_(n), m_(m), grid_(g), codes_(std::move(codes)), indices_(std::move(indices)),
      scales_(std::move(scales)), zeros_(std::move(zeros)) {
  check_nm_shape(cols, n, m, "SparseNMQ4");
  check(supported(n, m, g), "SparseNMQ4: grid of {} bits, group {} unsupported (4 bits, group 0 or a multiple of 32)",
        g.bits, g.group);
  check(int64_t(codes_.size()) == rows * code_row_bytes(), "SparseNMQ4: {} code bytes, want {}", codes_.size(),
        rows * code_row_bytes());
  check(int64_t(indices_.size()) == rows * index_row_bytes(), "SparseNMQ4: {} index bytes, want {}", indices_.size(),
        rows * index_row_bytes());
  check(int64_t(scales_.size()) == rows * ngroups() && (g.sym || zeros_.size() == scales_.size()),
        "SparseNMQ4: {} scales / {} zeros for {} groups", scales_.size(), zeros_.size(), rows * ngroups());
  for (uint8_t z : zeros_) check(z <= g.maxq(), "SparseNMQ4: zero {} out of [0, {}]", z, g.maxq());
}

// Chunk layout of codes: byte j (0..7): low nibble value j, high nibble value j + 8.
static int code_of(const uint8_t* row_codes, int64_t k) {
  const uint8_t byte = row_codes[k / kNmChunk * 8 + (k % kNmChunk) % 8];
  return (k % kNmChunk) < 8 ? byte & 15 : byte >> 4;
}

std::unique_ptr<SparseNMQ4> SparseNMQ4::from_codes(int64_t rows, int64_t cols, int n, int m, const QuantGrid& g,
                                                   const uint8_t* q, const std::vector<int32_t>& kc,
                                                   const float* scales, const uint8_t* zeros) {
  check_nm_shape(cols, n, m, "SparseNMQ4");
  const int64_t kept = cols / m * n, chunks = (kept + kNmChunk - 1) / kNmChunk, ng = g.ngroups(cols);
  std::vector<uint8_t> codes(size_t(rows * chunks * 8), 0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < kept; k++) {
      const uint8_t c = q[r * cols + kc[size_t(r * kept + k)]];
      check(c <= 15, "SparseNMQ4: code {} out of [0, 15]", c);
      codes[size_t(r * chunks * 8 + k / kNmChunk * 8 + (k % kNmChunk) % 8)] |= (k % kNmChunk) < 8 ? c : uint8_t(c << 4);
    }
  std::vector<f16_t> sc(size_t(rows * ng));
  for (size_t i = 0; i < sc.size(); i++) sc[i] = f32_to_f16(scales[i]);
  std::vector<uint8_t> z = g.sym ? std::vector<uint8_t>() : std::vector<uint8_t>(zeros, zeros + rows * ng);
  return std::make_unique<SparseNMQ4>(rows, cols, n, m, g, std::move(codes), pack_indices(kc, rows, kept, n, m),
                                      std::move(sc), std::move(z));
}

std::unique_ptr<SparseNMQ4> SparseNMQ4::quantize(int64_t rows, int64_t cols, const float* W, int n, int m,
                                                 const QuantGrid& g, const std::string& what) {
  check_nm_shape(cols, n, m, what);
  std::vector<int32_t> kc = nm_kept_columns(W, rows, cols, n, m, what);
  const int64_t gs = g.group_size(cols), ng = g.ngroups(cols);
  std::vector<uint8_t> q(size_t(rows * cols)), zeros(size_t(rows * ng));
  std::vector<float> scales(size_t(rows * ng));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t gi = 0; gi < ng; gi++) {
      const int64_t c0 = gi * gs, len = std::min(gs, cols - c0);
      GroupParams p = find_params(W + r * cols + c0, len, g);
      scales[size_t(r * ng + gi)] = p.scale, zeros[size_t(r * ng + gi)] = uint8_t(p.zero);
      quantize_group(W + r * cols + c0, len, p, g.bits, q.data() + r * cols + c0);
    }
  return from_codes(rows, cols, n, m, g, q.data(), kc, scales.data(), zeros.data());
}

void SparseNMQ4::decode_rows(int64_t r0, int64_t r1, float* W) const {
  const int64_t gs = grid_.group_size(cols());
  for (int64_t r = r0; r < r1; r++) {
    float* out = W + (r - r0) * cols();
    std::fill(out, out + cols(), 0.0f);
    for (int64_t k = 0; k < kept(); k++) {
      const int64_t c = kept_column(indices() + r * index_row_bytes(), k, n_, m_);
      out[c] = dequant(code_of(codes() + r * code_row_bytes(), k), params(r, c / gs));
    }
  }
}

void SparseNMQ4::gemv_ref(const float* x, float* y) const {
  const int64_t gs = grid_.group_size(cols());
  for (int64_t r = 0; r < rows(); r++) {
    double s = 0;
    for (int64_t k = 0; k < kept(); k++) {
      const int64_t c = kept_column(indices() + r * index_row_bytes(), k, n_, m_);
      s += double(dequant(code_of(codes() + r * code_row_bytes(), k), params(r, c / gs))) * x[c];
    }
    y[r] = float(s);
  }
}

void SparseNMQ4::gemv(const float* x, float* y) const {
  if (!sparse_simd_in_use()) return gemv_ref(x, y);
#pragma omp parallel for schedule(static) if (rows() * cols() > 32768)
  for (int64_t r0 = 0; r0 < rows(); r0 += 16) sparse_nmq4_gemv_avx512(*this, x, y, r0, std::min(rows(), r0 + 16));
}

nlohmann::json SparseNMQ4::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".qweight", DType::U8, {rows(), code_row_bytes()}, codes_.data(), codes_.size());
  w.add(prefix + ".indices", DType::U8, {rows(), index_row_bytes()}, indices_.data(), indices_.size());
  w.add(prefix + ".scales", DType::F16, {rows(), ngroups()}, scales_.data(), scales_.size() * 2);
  if (!grid_.sym) w.add(prefix + ".zeros", DType::U8, {rows(), ngroups()}, zeros_.data(), zeros_.size());
  return {{"format", format()}, {"rows", rows()},   {"cols", cols()},      {"n", n_},
          {"m", m_},            {"bits", grid_.bits}, {"group", grid_.group}, {"sym", grid_.sym}};
}

WeightPtr load_nmq4(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int n, m;
  spec_nm(src, prefix, spec, &n, &m);
  QuantGrid g;
  try {
    g.bits = spec.at("bits").get<int>();
    g.group = spec.at("group").get<int>();
    g.sym = spec.at("sym").get<bool>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: spec {} lacks bits/group/sym ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(SparseNMQ4::supported(n, m, g), "{}: {}: unsupported spec {}", src.where(), prefix, spec.dump());
  int64_t rows, cols;
  sparse_spec_shape(src, prefix, spec, SparseNMQ4::format_name(n, m, g), &rows, &cols);
  check(cols % m == 0, "{}: {}: {} columns not divisible by {}", src.where(), prefix, cols, m);
  const int64_t chunks = (cols / m * n + kNmChunk - 1) / kNmChunk, ng = g.ngroups(cols);
  auto codes = sparse_tensor_bytes(src, prefix, "qweight", DType::U8, {rows, chunks * 8});
  auto idx = sparse_tensor_bytes(src, prefix, "indices", DType::U8, {rows, chunks * nm_chunk_index_bytes(m)});
  auto sb = sparse_tensor_bytes(src, prefix, "scales", DType::F16, {rows, ng});
  std::vector<f16_t> scales(size_t(rows * ng));
  std::memcpy(scales.data(), sb.data(), sb.size());
  std::vector<uint8_t> zeros = g.sym ? std::vector<uint8_t>() : sparse_tensor_bytes(src, prefix, "zeros", DType::U8, {rows, ng});
  try {
    return std::make_unique<SparseNMQ4>(rows, cols, n, m, g, std::move(codes), std::move(idx), std::move(scales),
                                        std::move(zeros));
  } catch (const Error& e) {
    fail("{}: {}: {}", src.where(), prefix, e.what());
  }
}

}  // namespace lmp

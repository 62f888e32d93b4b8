// Shared machinery of the sparse formats (n > 1 path, dispatch, registry) and the unstructured bitmap format.
// N:M formats are in sparse_nm.cpp; AVX-512 kernels in sparse_avx512.cpp. Math and layouts: sparse.h.
#include "kernels/sparse.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <deque>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/qint.h"
#include "kernels/weight_registry.h"

namespace lmp {

const char* values_name(SparseValues v) { return v == SparseValues::F32 ? "f32" : "f16"; }

// ---------------------------------------------------------------------------------------------------
// Dispatch

bool sparse_simd_available() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
  }();
  return ok;
}

static bool g_force_ref = false;
void sparse_force_reference(bool on) { g_force_ref = on; }
bool sparse_simd_in_use() { return !g_force_ref && sparse_simd_available(); }

// Threads over row tiles like gemv_f32 (same size threshold), so timings compare like with like.
template <class Kernel>
static void parallel_rows(int64_t rows, int64_t cols, Kernel k) {
  const int64_t tile = 16, ntiles = (rows + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (int64_t i = 0; i < ntiles; i++) k(i * tile, std::min(rows, (i + 1) * tile));
}

void SparseMatrixBase::matmul(const float* X, int64_t n, float* Y) const {
  if (n == 1) return gemv(X, Y);
  // Decode a tile of rows to f32, then one sgemm per tile writes Y[:, tile] (ldc = rows).
  const int64_t tile = 256;
  std::vector<float> Wt(size_t(std::min(tile, rows()) * cols()));
  for (int64_t r0 = 0; r0 < rows(); r0 += tile) {
    const int64_t nr = std::min(tile, rows() - r0);
#pragma omp parallel for schedule(static) if (nr * cols() > 65536)
    for (int64_t i = 0; i < nr; i += 16) decode_rows(r0 + i, r0 + std::min(nr, i + 16), Wt.data() + i * cols());
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(nr), int(cols()), 1.0f, X, int(cols()),
                Wt.data(), int(cols()), 0.0f, Y + r0, int(rows()));
  }
}

// ---------------------------------------------------------------------------------------------------
// Values (f32 or f16) stored as raw bytes

static float load_value(const uint8_t* p, SparseValues v, int64_t i) {
  if (v == SparseValues::F32) {
    float f;
    std::memcpy(&f, p + 4 * i, 4);
    return f;
  }
  f16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return f16_to_f32(h);
}

static void store_value(uint8_t* p, SparseValues v, int64_t i, float x) {
  if (v == SparseValues::F32) return (void)std::memcpy(p + 4 * i, &x, 4);
  f16_t h = f32_to_f16(x);
  std::memcpy(p + 2 * i, &h, 2);
}

// ---------------------------------------------------------------------------------------------------
// SparseBitmap

std::string SparseBitmap::format_name(SparseValues v) { return fmt::format("sparse_bitmap_{}", values_name(v)); }

SparseBitmap::SparseBitmap(int64_t rows, int64_t cols, SparseValues v, std::vector<uint64_t> bitmap,
                           std::vector<int64_t> row_ptr, std::vector<uint8_t> values)
    : SparseMatrixBase(rows, cols), values_(v), bitmap_(std::move(bitmap)), row_ptr_(std::move(row_ptr)),
      values_data_(std::move(values)) {
  check(rows > 0 && cols > 0, "SparseBitmap: empty {}x{} matrix", rows, cols);
  check(int64_t(bitmap_.size()) == rows * words(), "SparseBitmap: bitmap has {} words, want {}", bitmap_.size(),
        rows * words());
  check(int64_t(row_ptr_.size()) == rows + 1 && row_ptr_[0] == 0, "SparseBitmap: bad row pointer");
  for (int64_t r = 0; r < rows; r++) {
    int64_t pop = 0;
    for (int64_t k = 0; k < words(); k++) pop += std::popcount(bitmap_[size_t(r * words() + k)]);
    check(row_ptr_[size_t(r + 1)] - row_ptr_[size_t(r)] == pop, "SparseBitmap: row {} has {} bits set but {} values",
          r, pop, row_ptr_[size_t(r + 1)] - row_ptr_[size_t(r)]);
  }
  const uint64_t pad = cols % 64 ? ~0ull << (cols % 64) : 0;  // bits past the last column must be clear
  for (int64_t r = 0; r < rows; r++)
    check((bitmap_[size_t(r * words() + words() - 1)] & pad) == 0, "SparseBitmap: row {} sets bits past column {}",
          r, cols);
  check(int64_t(values_data_.size()) >= nnz() * value_bytes(v), "SparseBitmap: {} value bytes for {} values",
        values_data_.size(), nnz());
}

std::unique_ptr<SparseBitmap> SparseBitmap::from_dense(int64_t rows, int64_t cols, const float* W, SparseValues v) {
  const int64_t nw = (cols + 63) / 64;
  std::vector<uint64_t> bm(size_t(rows * nw), 0);
  std::vector<int64_t> rp(size_t(rows + 1), 0);
  for (int64_t r = 0; r < rows; r++) {
    int64_t cnt = 0;
    for (int64_t c = 0; c < cols; c++)
      if (W[r * cols + c] != 0) bm[size_t(r * nw + c / 64)] |= 1ull << (c % 64), cnt++;
    rp[size_t(r + 1)] = rp[size_t(r)] + cnt;
  }
  std::vector<uint8_t> vals(size_t(std::max<int64_t>(rp.back(), 1) * value_bytes(v)), 0);
  int64_t k = 0;
  for (int64_t i = 0; i < rows * cols; i++)
    if (W[i] != 0) store_value(vals.data(), v, k++, W[i]);
  return std::make_unique<SparseBitmap>(rows, cols, v, std::move(bm), std::move(rp), std::move(vals));
}

size_t SparseBitmap::nbytes() const {
  return bitmap_.size() * 8 + row_ptr_.size() * 8 + size_t(nnz() * value_bytes(values_));
}

void SparseBitmap::decode_rows(int64_t r0, int64_t r1, float* W) const {
  for (int64_t r = r0; r < r1; r++) {
    float* out = W + (r - r0) * cols();
    int64_t k = row_ptr_[size_t(r)];
    for (int64_t c = 0; c < cols(); c++)
      out[c] = (bitmap_[size_t(r * words() + c / 64)] >> (c % 64)) & 1 ? load_value(values(), values_, k++) : 0.0f;
  }
}

// Reference: walk each row's set bits in column order, consuming packed values.
void SparseBitmap::gemv_ref(const float* x, float* y) const {
  for (int64_t r = 0; r < rows(); r++) {
    double s = 0;
    int64_t k = row_ptr_[size_t(r)];
    for (int64_t c = 0; c < cols(); c++)
      if ((bitmap_[size_t(r * words() + c / 64)] >> (c % 64)) & 1) s += double(load_value(values(), values_, k++)) * x[c];
    y[r] = float(s);
  }
}

void SparseBitmap::gemv(const float* x, float* y) const {
  if (!sparse_simd_in_use()) return gemv_ref(x, y);
  parallel_rows(rows(), cols(), [&](int64_t r0, int64_t r1) { sparse_bitmap_gemv_avx512(*this, x, y, r0, r1); });
}

void SparseBitmap::matmul(const float* X, int64_t n, float* Y) const {
  if (n < kPrefillMin || !sparse_simd_in_use() || cols() % 16 != 0) return SparseMatrixBase::matmul(X, n, Y);
  const int64_t panels = (rows() + 63) / 64;  // 64 rows per task: the kernel's cache panel
#pragma omp parallel for schedule(static) if (n * rows() * cols() > (1 << 20))
  for (int64_t i = 0; i < panels; i++) sparse_bitmap_gemm_avx512(*this, X, n, Y, i * 64, std::min(rows(), i * 64 + 64));
}

nlohmann::json SparseBitmap::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".bitmap", DType::U8, {rows(), words() * 8}, bitmap_.data(), bitmap_.size() * 8);
  w.add(prefix + ".row_ptr", DType::I64, {rows() + 1}, row_ptr_.data(), row_ptr_.size() * 8);
  const int64_t nv = std::max<int64_t>(nnz(), 1);  // a fully pruned matrix still stores one (zero) value
  w.add(prefix + ".values", values_ == SparseValues::F32 ? DType::F32 : DType::F16, {nv}, values_data_.data(),
        size_t(nv * value_bytes(values_)));
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"nnz", nnz()}};
}

// ---------------------------------------------------------------------------------------------------
// Loading (shared helpers are declared in sparse_nm.cpp's section via these)

// Copies tensor "<prefix>.<part>" after checking its dtype and shape.
std::vector<uint8_t> sparse_tensor_bytes(const TensorSource& src, const std::string& prefix, const char* part,
                                         DType dt, std::vector<int64_t> shape) {
  const TensorView& t = src.get(prefix + "." + part);
  check(t.dtype == dt && t.shape == shape, "{}: tensor {} is {} [{}], want {} [{}]", src.where(), t.name,
        dtype_name(t.dtype), fmt::join(t.shape, ", "), dtype_name(dt), fmt::join(shape, ", "));
  return std::vector<uint8_t>(t.data, t.data + t.nbytes);
}

// rows, cols from a spec, with the spec's format name checked against `want`.
void sparse_spec_shape(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec,
                       const std::string& want, int64_t* rows, int64_t* cols) {
  try {
    *rows = spec.at("rows").get<int64_t>();
    *cols = spec.at("cols").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: sparse spec {} lacks rows/cols ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(*rows > 0 && *cols > 0, "{}: {}: bad shape in spec {}", src.where(), prefix, spec.dump());
  check(spec.value("format", "") == want, "{}: {}: spec {} names format '{}', want '{}'", src.where(), prefix,
        spec.dump(), spec.value("format", ""), want);
}

template <SparseValues V>
static WeightPtr load_bitmap(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows, cols;
  sparse_spec_shape(src, prefix, spec, SparseBitmap::format_name(V), &rows, &cols);
  const int64_t nw = (cols + 63) / 64;
  auto bm = sparse_tensor_bytes(src, prefix, "bitmap", DType::U8, {rows, nw * 8});
  auto rp = sparse_tensor_bytes(src, prefix, "row_ptr", DType::I64, {rows + 1});
  std::vector<uint64_t> bitmap(size_t(rows * nw));
  std::vector<int64_t> row_ptr(size_t(rows + 1));
  std::memcpy(bitmap.data(), bm.data(), bm.size());
  std::memcpy(row_ptr.data(), rp.data(), rp.size());
  const int64_t nnz = row_ptr.back();
  check(nnz >= 0 && nnz <= rows * cols, "{}: {}: row pointer ends at {}", src.where(), prefix, nnz);
  auto vals = sparse_tensor_bytes(src, prefix, "values", V == SparseValues::F32 ? DType::F32 : DType::F16,
                                  {std::max<int64_t>(nnz, 1)});
  try {
    return std::make_unique<SparseBitmap>(rows, cols, V, std::move(bitmap), std::move(row_ptr), std::move(vals));
  } catch (const Error& e) {
    fail("{}: {}: {}", src.where(), prefix, e.what());
  }
}

WeightPtr load_nm(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);
WeightPtr load_nmq4(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

const std::vector<WeightFormatInfo>& sparse_weight_formats() {
  static const std::vector<WeightFormatInfo> t = [] {
    std::vector<WeightFormatInfo> v = {
        {"sparse_bitmap_f32", "unstructured sparse: bitmap + packed f32 values, 0.125 + 4·density bytes/weight",
         load_bitmap<SparseValues::F32>},
        {"sparse_bitmap_f16", "unstructured sparse: bitmap + packed f16 values, 0.125 + 2·density bytes/weight",
         load_bitmap<SparseValues::F16>},
        {"nm2_4_f32", "2:4 sparse, f32 values + 2-bit indices, 17 bits/weight", load_nm},
        {"nm2_4_f16", "2:4 sparse, f16 values + 2-bit indices, 9 bits/weight", load_nm},
        {"nm4_8_f32", "4:8 sparse, f32 values + 3-bit indices, 17.5 bits/weight", load_nm},
        {"nm4_8_f16", "4:8 sparse, f16 values + 3-bit indices, 9.5 bits/weight", load_nm},
    };
    // N:M + int4 codes, one row per (pattern, group, sym); bits/weight at 4096 columns.
    static std::deque<std::string> text;  // backs the const char* fields
    for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}})
      for (int group : {128, 32, 64, 256, 0})
        for (bool sym : {false, true}) {
          QuantGrid g{.bits = 4, .sym = sym, .group = group};
          double gs = group ? group : 4096;
          double bpw = double(n) / m * (4 + nm_index_bits(m)) + (16.0 + (sym ? 0 : 8)) / gs;
          text.push_back(SparseNMQ4::format_name(n, m, g));
          const char* name = text.back().c_str();
          text.push_back(fmt::format("{}:{} sparse, kept values as int4 codes (group {}, {}), {:.3f} bits/weight", n,
                                     m, group, sym ? "sym" : "asym", bpw));
          v.push_back({name, text.back().c_str(), load_nmq4});
        }
    return v;
  }();
  return t;
}

}  // namespace lmp

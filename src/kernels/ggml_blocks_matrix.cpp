#include "kernels/ggml_blocks_matrix.h"

#include <algorithm>
#include <cblas.h>
#include <cstring>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "kernels/qint.h"

namespace lmp {

static const GgmlTypeTraits& checked_traits(GgmlType type, int64_t rows, int64_t cols) {
  const GgmlTypeTraits* t = ggml_type_traits(uint32_t(type));
  check(t != nullptr, "ggml matrix: unsupported type id {}", uint32_t(type));
  check(rows >= 0 && cols >= 0 && cols % t->block_size == 0,
        "ggml matrix: {} x {} {}: columns must be a multiple of the block size {}", rows, cols, t->name,
        t->block_size);
  return *t;
}

GgmlBlockMatrix::GgmlBlockMatrix(GgmlType type, int64_t rows, int64_t cols, const void* data,
                                 std::shared_ptr<const void> keeper)
    : WeightMatrix(rows, cols),
      traits_(&checked_traits(type, rows, cols)),
      row_bytes_(ggml_row_size(type, cols)),
      keeper_(std::move(keeper)),
      data_(static_cast<const uint8_t*>(data)) {}

GgmlBlockMatrix::GgmlBlockMatrix(GgmlType type, int64_t rows, int64_t cols, std::vector<uint8_t> blocks)
    : WeightMatrix(rows, cols),
      traits_(&checked_traits(type, rows, cols)),
      row_bytes_(ggml_row_size(type, cols)),
      own_(std::move(blocks)),
      data_(own_.data()) {
  check(own_.size() == size_t(rows) * row_bytes_, "ggml matrix: {} bytes for {} x {} {} (want {})", own_.size(),
        rows, cols, traits_->name, size_t(rows) * row_bytes_);
}

std::unique_ptr<GgmlBlockMatrix> GgmlBlockMatrix::quantize(GgmlType type, int64_t rows, int64_t cols,
                                                           const float* W) {
  const GgmlTypeTraits& t = checked_traits(type, rows, cols);
  check(t.from_float != nullptr, "ggml matrix: lmpress has no quantizer for {}", t.name);
  const size_t rb = ggml_row_size(type, cols);
  std::vector<uint8_t> blocks(size_t(rows) * rb);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++) t.from_float(W + r * cols, blocks.data() + size_t(r) * rb, cols);
  return std::make_unique<GgmlBlockMatrix>(type, rows, cols, std::move(blocks));
}

void GgmlBlockMatrix::dequantize(float* W) const {
#pragma omp parallel for schedule(static) if (rows() * cols() > 65536)
  for (int64_t r = 0; r < rows(); r++) dequantize_row(r, W + r * cols());
}

// Decode (n == 1): each thread dequantizes one row into its own buffer and dots it with x.
// Prefill (n > 1): a tile of rows is dequantized (in parallel) and one sgemm writes Y[:, tile].
void GgmlBlockMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols();
  if (n == 1) {
#pragma omp parallel if (R * C > 32768)
    {
      std::vector<float> w(static_cast<size_t>(C));
#pragma omp for schedule(static)
      for (int64_t r = 0; r < R; r++) {
        dequantize_row(r, w.data());
        gemv_f32(w.data(), X, Y + r, 1, C);
      }
    }
    return;
  }
  const int64_t tile = std::clamp<int64_t>((int64_t(1) << 20) / std::max<int64_t>(C, 1), 16, 256);
  std::vector<float> Wt(size_t(std::min(tile, R) * C));
  for (int64_t r0 = 0; r0 < R; r0 += tile) {
    const int64_t nr = std::min(tile, R - r0);
#pragma omp parallel for schedule(static) if (nr * C > 65536)
    for (int64_t i = 0; i < nr; i++) dequantize_row(r0 + i, Wt.data() + i * C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(nr), int(C), 1.0f, X, int(C), Wt.data(),
                int(C), 0.0f, Y + r0, int(R));
  }
}

nlohmann::json GgmlBlockMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".weight", DType::U8, {rows(), int64_t(row_bytes_)}, data_, nbytes());
  return {{"format", "ggml"}, {"type", traits_->name}};
}

// Q4_0 / Q8_0 rows -> one code per weight (sym zero 2^(b−1): a Q4_0 nibble is the code, a Q8_0 value + 128) and
// the f16 block scales, moved into a QIntMatrix of the symmetric g32 grid.
static WeightPtr qint_from_legacy(GgmlType type, int64_t rows, int64_t cols, const uint8_t* data) {
  const bool q8 = type == GgmlType::Q8_0;
  QuantGrid g;
  g.bits = q8 ? 8 : 4, g.sym = true, g.group = kQK;
  const int64_t nb = cols / kQK;
  const size_t rb = ggml_row_size(type, cols);
  std::vector<uint8_t> q(size_t(rows * cols));
  std::vector<float> s(size_t(rows * nb));
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < nb; b++) {
      uint8_t* qc = q.data() + size_t(r * cols + b * kQK);
      const uint8_t* src = data + size_t(r) * rb;
      if (q8) {
        BlockQ8_0 blk;
        std::memcpy(&blk, src + size_t(b) * sizeof blk, sizeof blk);
        s[size_t(r * nb + b)] = f16_to_f32(blk.d);
        for (int j = 0; j < kQK; j++) qc[j] = uint8_t(int(blk.qs[j]) + 128);
      } else {
        BlockQ4_0 blk;
        std::memcpy(&blk, src + size_t(b) * sizeof blk, sizeof blk);
        s[size_t(r * nb + b)] = f16_to_f32(blk.d);
        for (int j = 0; j < kQK / 2; j++) qc[j] = blk.qs[j] & 15, qc[j + kQK / 2] = blk.qs[j] >> 4;
      }
    }
  return QIntMatrix::from_codes(rows, cols, g, q.data(), s.data(), nullptr);
}

WeightPtr make_ggml_weight(GgmlType type, int64_t rows, int64_t cols, const void* data,
                           std::shared_ptr<const void> keeper) {
  if ((type == GgmlType::Q4_0 || type == GgmlType::Q8_0) && cols % kQK == 0)
    return qint_from_legacy(type, rows, cols, static_cast<const uint8_t*>(data));
  if (type == GgmlType::F32)
    return std::make_unique<DenseF32>(rows, cols, static_cast<const float*>(data), std::move(keeper));
  if (type == GgmlType::F16)
    return std::make_unique<DenseF16>(rows, cols, static_cast<const f16_t*>(data), std::move(keeper));
  return std::make_unique<GgmlBlockMatrix>(type, rows, cols, data, std::move(keeper));
}

WeightPtr load_ggml_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  const std::string name = spec.value("type", "");
  const GgmlTypeTraits* t = ggml_type_by_name(name);
  check(t != nullptr, "{}: {}: unknown ggml type '{}'", src.where(), prefix, name);
  const TensorView& v = src.get(prefix + ".weight");
  check(v.dtype == DType::U8 && v.shape.size() == 2, "{}: tensor {} must be a U8 matrix of {} blocks (is {} [{}])",
        src.where(), v.name, t->name, dtype_name(v.dtype), fmt::join(v.shape, ", "));
  const int64_t rows = v.shape[0], row_bytes = v.shape[1];
  check(row_bytes % int64_t(t->type_size) == 0, "{}: tensor {}: row of {} bytes is not a whole number of {} blocks",
        src.where(), v.name, row_bytes, t->name);
  const int64_t cols = row_bytes / int64_t(t->type_size) * t->block_size;
  return std::make_unique<GgmlBlockMatrix>(t->type, rows, cols, v.data, src.keeper());
}

}  // namespace lmp

#include "kernels/ggml_blocks_matrix.h"

#include <algorithm>
#include <cblas.h>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/dense.h"

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

WeightPtr make_ggml_weight(GgmlType type, int64_t rows, int64_t cols, const void* data,
                           std::shared_ptr<const void> keeper) {
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

#include "kernels/w8a8_outlier.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

OutlierW8A8Matrix::OutlierW8A8Matrix(int64_t rows, int64_t cols, std::unique_ptr<W8A8Matrix> int8,
                                     std::vector<int32_t> outliers, std::vector<f16_t> wo)
    : WeightMatrix(rows, cols), int8_(std::move(int8)), outliers_(std::move(outliers)), wo16_(std::move(wo)) {
  const int64_t k = int64_t(outliers_.size());
  check(k < cols && int8_->rows() == rows && int8_->cols() == cols - k && int64_t(wo16_.size()) == rows * k,
        "llm_int8: inconsistent parts ({} outliers of {} columns)", k, cols);
  check(std::is_sorted(outliers_.begin(), outliers_.end()) &&
            std::adjacent_find(outliers_.begin(), outliers_.end()) == outliers_.end() &&
            (k == 0 || (outliers_.front() >= 0 && outliers_.back() < cols)),
        "llm_int8: outlier columns must be distinct, ascending and in [0, {})", cols);
  for (int32_t c = 0, j = 0; c < cols; c++)
    if (j < k && outliers_[size_t(j)] == c) j++;
    else regular_.push_back(c);
  wo_.resize(wo16_.size());
  for (size_t i = 0; i < wo_.size(); i++) wo_[i] = f16_to_f32(wo16_[i]);
}

std::unique_ptr<OutlierW8A8Matrix> OutlierW8A8Matrix::quantize(int64_t rows, int64_t cols, const float* W,
                                                               std::vector<int32_t> outliers) {
  std::sort(outliers.begin(), outliers.end());
  const int64_t k = int64_t(outliers.size());
  check(k < cols, "llm_int8: {} outlier columns leave no int8 part of {} columns", k, cols);
  std::vector<float> Wr(size_t(rows * (cols - k)));
  std::vector<f16_t> wo(size_t(rows * k));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0, j = 0, i = 0; c < cols; c++) {
      float w = W[r * cols + c];
      if (j < k && outliers[size_t(j)] == c) wo[size_t(r * k + j++)] = f32_to_f16(w);
      else Wr[size_t(r * (cols - k) + i++)] = w;
    }
  auto int8 = W8A8Matrix::quantize(rows, cols - k, Wr.data(), 0);
  return std::make_unique<OutlierW8A8Matrix>(rows, cols, std::move(int8), std::move(outliers), std::move(wo));
}

void OutlierW8A8Matrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t C = cols(), k = int64_t(outliers_.size()), cr = C - k;
  thread_local std::vector<float> xr, xo;
  xr.resize(size_t(n * cr));
  xo.resize(size_t(n * k));
  for (int64_t t = 0; t < n; t++) {
    for (int64_t i = 0; i < cr; i++) xr[size_t(t * cr + i)] = X[t * C + regular_[size_t(i)]];
    for (int64_t j = 0; j < k; j++) xo[size_t(t * k + j)] = X[t * C + outliers_[size_t(j)]];
  }
  int8_->matmul(xr.data(), n, Y);
  if (k > 0)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(rows()), int(k), 1.0f, xo.data(), int(k),
                wo_.data(), int(k), 1.0f, Y, int(rows()));
}

void OutlierW8A8Matrix::dequantize(float* W) const {
  const int64_t C = cols(), k = int64_t(outliers_.size()), cr = C - k;
  std::vector<float> Wr = int8_->dense();
  for (int64_t r = 0; r < rows(); r++) {
    for (int64_t i = 0; i < cr; i++) W[r * C + regular_[size_t(i)]] = Wr[size_t(r * cr + i)];
    for (int64_t j = 0; j < k; j++) W[r * C + outliers_[size_t(j)]] = wo_[size_t(r * k + j)];
  }
}

nlohmann::json OutlierW8A8Matrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  nlohmann::json inner = int8_->save(w, prefix + ".int8");
  const int64_t k = int64_t(outliers_.size());
  if (k > 0) {
    w.add(prefix + ".outlier_idx", DType::I32, {k}, outliers_.data(), size_t(k) * 4);
    w.add(prefix + ".outlier_w", DType::F16, {rows(), k}, wo16_.data(), wo16_.size() * 2);
  }
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"outliers", k}, {"int8", inner}};
}

WeightPtr load_llm_int8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0, k = 0;
  nlohmann::json inner;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    k = spec.at("outliers").get<int64_t>();
    inner = spec.at("int8");
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: llm_int8 spec {} lacks rows/cols/outliers/int8 ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows > 0 && k >= 0 && k < cols && inner.value("format", "") == "w8a8_row",
        "{}: {}: unsupported llm_int8 spec {}", src.where(), prefix, spec.dump());
  WeightPtr w = load_w8a8(src, prefix + ".int8", inner);
  std::unique_ptr<W8A8Matrix> int8(static_cast<W8A8Matrix*>(w.release()));
  std::vector<int32_t> idx(static_cast<size_t>(k));
  std::vector<f16_t> wo(size_t(rows * k));
  if (k > 0) {
    const TensorView& ti = src.get(prefix + ".outlier_idx");
    const TensorView& tw = src.get(prefix + ".outlier_w");
    check(ti.dtype == DType::I32 && ti.shape == std::vector<int64_t>{k}, "{}: tensor {} is {} [{}], want I32 [{}]",
          src.where(), ti.name, dtype_name(ti.dtype), fmt::join(ti.shape, ", "), k);
    check(tw.dtype == DType::F16 && tw.shape == std::vector<int64_t>{rows, k},
          "{}: tensor {} is {} [{}], want F16 [{}, {}]", src.where(), tw.name, dtype_name(tw.dtype),
          fmt::join(tw.shape, ", "), rows, k);
    std::memcpy(idx.data(), ti.data, size_t(k) * 4);
    std::memcpy(wo.data(), tw.data, wo.size() * 2);
  }
  return std::make_unique<OutlierW8A8Matrix>(rows, cols, std::move(int8), std::move(idx), std::move(wo));
}

}  // namespace lmp

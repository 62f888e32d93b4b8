#include "kernels/colsplit.h"

#include <cblas.h>
#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

ColumnSplitMatrix::ColumnSplitMatrix(int64_t rows, int64_t cols, WeightPtr rest, std::vector<int32_t> kept,
                                     const float* wk)
    : WeightMatrix(rows, cols), rest_(std::move(rest)), kept_(std::move(kept)) {
  wk16_.resize(size_t(rows) * kept_.size());
  for (size_t i = 0; i < wk16_.size(); i++) wk16_[i] = f32_to_f16(wk[i]);
  init();
}

ColumnSplitMatrix::ColumnSplitMatrix(int64_t rows, int64_t cols, WeightPtr rest, std::vector<int32_t> kept,
                                     std::vector<f16_t> wk16)
    : WeightMatrix(rows, cols), rest_(std::move(rest)), kept_(std::move(kept)), wk16_(std::move(wk16)) {
  init();
}

void ColumnSplitMatrix::init() {
  const int64_t k = int64_t(kept_.size());
  check(k >= 1 && k < cols() && rest_->rows() == rows() && rest_->cols() == cols() - k &&
            wk16_.size() == size_t(rows() * k),
        "colsplit: inconsistent shapes ({} x {}, {} kept columns, rest {} x {})", rows(), cols(), k, rest_->rows(),
        rest_->cols());
  std::vector<char> is_kept(size_t(cols()), 0);
  for (size_t j = 0; j < kept_.size(); j++) {
    check(kept_[j] >= 0 && kept_[j] < cols() && (j == 0 || kept_[j] > kept_[j - 1]),
          "colsplit: kept column indices must be ascending and inside [0, {})", cols());
    is_kept[size_t(kept_[j])] = 1;
  }
  for (int32_t c = 0; c < cols(); c++)
    if (!is_kept[size_t(c)]) other_.push_back(c);
  wk_.resize(wk16_.size());
  for (size_t i = 0; i < wk_.size(); i++) wk_[i] = f16_to_f32(wk16_[i]);
}

void ColumnSplitMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t C = cols(), k = int64_t(kept_.size()), nr = C - k;
  std::vector<float> Xr(size_t(n * nr)), Xk(size_t(n * k));
  for (int64_t t = 0; t < n; t++) {
    for (int64_t j = 0; j < nr; j++) Xr[size_t(t * nr + j)] = X[t * C + other_[size_t(j)]];
    for (int64_t j = 0; j < k; j++) Xk[size_t(t * k + j)] = X[t * C + kept_[size_t(j)]];
  }
  rest_->matmul(Xr.data(), n, Y);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(rows()), int(k), 1.0f, Xk.data(), int(k),
              wk_.data(), int(k), 1.0f, Y, int(rows()));
}

void ColumnSplitMatrix::dequantize(float* W) const {
  const int64_t C = cols(), k = int64_t(kept_.size()), nr = C - k;
  std::vector<float> R = rest_->dense();
  for (int64_t r = 0; r < rows(); r++) {
    for (int64_t j = 0; j < nr; j++) W[r * C + other_[size_t(j)]] = R[size_t(r * nr + j)];
    for (int64_t j = 0; j < k; j++) W[r * C + kept_[size_t(j)]] = wk_[size_t(r * k + j)];
  }
}

nlohmann::json ColumnSplitMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  nlohmann::json inner = rest_->save(w, prefix + ".rest");
  const int64_t k = int64_t(kept_.size());
  w.add(prefix + ".kept_idx", DType::I32, {k}, kept_.data(), size_t(k) * 4);
  w.add(prefix + ".kept_w", DType::F16, {rows(), k}, wk16_.data(), wk16_.size() * 2);
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"kept", k}, {"rest", inner}};
}

WeightPtr load_colsplit(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0, k = 0;
  nlohmann::json inner;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    k = spec.at("kept").get<int64_t>();
    inner = spec.at("rest");
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: colsplit spec {} lacks rows/cols/kept/rest ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows > 0 && k >= 1 && k < cols, "{}: {}: unsupported colsplit spec {}", src.where(), prefix, spec.dump());
  WeightPtr rest = load_weight(src, prefix + ".rest", inner);
  const TensorView& ti = src.get(prefix + ".kept_idx");
  const TensorView& tw = src.get(prefix + ".kept_w");
  check(ti.dtype == DType::I32 && ti.shape == std::vector<int64_t>{k}, "{}: tensor {} is {} [{}], want I32 [{}]",
        src.where(), ti.name, dtype_name(ti.dtype), fmt::join(ti.shape, ", "), k);
  check(tw.dtype == DType::F16 && tw.shape == std::vector<int64_t>{rows, k},
        "{}: tensor {} is {} [{}], want F16 [{}, {}]", src.where(), tw.name, dtype_name(tw.dtype),
        fmt::join(tw.shape, ", "), rows, k);
  std::vector<int32_t> idx(static_cast<size_t>(k));
  std::vector<f16_t> wk(size_t(rows * k));
  std::memcpy(idx.data(), ti.data, size_t(k) * 4);
  std::memcpy(wk.data(), tw.data, wk.size() * 2);
  return std::make_unique<ColumnSplitMatrix>(rows, cols, std::move(rest), std::move(idx), std::move(wk));
}

}  // namespace lmp

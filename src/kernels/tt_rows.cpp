#include "kernels/tt_rows.h"

#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"

namespace lmp {

static int64_t product(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

TTRowsMatrix::TTRowsMatrix(int64_t rows, std::vector<int64_t> shape, std::vector<int64_t> ranks,
                           std::vector<std::vector<float>> cores)
    : WeightMatrix(rows, product(shape)), shape_(std::move(shape)), ranks_(std::move(ranks)), cores_(std::move(cores)) {
  const size_t K = shape_.size();
  check(K >= 1 && ranks_.size() == K + 1 && cores_.size() == K, "tt_rows: {} modes need {} ranks and {} cores, got {} and {}",
        K, K + 1, K, ranks_.size(), cores_.size());
  check(ranks_.front() == 1 && ranks_.back() == 1, "tt_rows: boundary ranks must be 1 (got [{}])", fmt::join(ranks_, ", "));
  for (size_t j = 0; j < K; j++) {
    check(shape_[j] >= 1 && ranks_[j + 1] >= 1, "tt_rows: mode sizes and ranks must be ≥ 1");
    check(cores_[j].size() == size_t(rows) * core_size(j), "tt_rows: core {} has {} values, want {} × {}", j,
          cores_[j].size(), rows, core_size(j));
  }
}

int64_t TTRowsMatrix::n_params() const {
  int64_t n = 0;
  for (size_t j = 0; j < shape_.size(); j++) n += int64_t(core_size(j));
  return n * rows();
}

void TTRowsMatrix::dequantize_row(int64_t r, float* out) const {
  // P (p, r_j) starts as core 0 viewed (d_1, r_1); each step P ← P · G_j viewed (r_{j-1}, d_j·r_j), which is
  // (p·d_j, r_j) in row-major order because the multi-index (i_1..i_j) is row-major with i_j fastest.
  thread_local std::vector<float> P, Q;
  const size_t K = shape_.size();
  P.assign(core(0, r), core(0, r) + core_size(0));
  int64_t p = shape_[0];
  for (size_t j = 1; j < K; j++) {
    const int64_t rin = ranks_[j], width = shape_[j] * ranks_[j + 1];
    const float* G = core(j, r);
    Q.assign(size_t(p * width), 0.0f);
    for (int64_t i = 0; i < p; i++) {
      float* q = Q.data() + i * width;
      for (int64_t a = 0; a < rin; a++) {
        const float pa = P[size_t(i * rin + a)];
        const float* g = G + a * width;
        for (int64_t c = 0; c < width; c++) q[c] += pa * g[c];
      }
    }
    P.swap(Q);
    p *= shape_[j];
  }
  std::memcpy(out, P.data(), size_t(cols()) * sizeof(float));
}

void TTRowsMatrix::dequantize(float* W) const {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows(); r++) dequantize_row(r, W + r * cols());
}

void TTRowsMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t R = rows(), C = cols();
#pragma omp parallel for schedule(static) if (R * n * C > (1 << 16))
  for (int64_t r = 0; r < R; r++) {
    thread_local std::vector<float> w;
    w.resize(size_t(C));
    dequantize_row(r, w.data());
    for (int64_t t = 0; t < n; t++) {
      const float* x = X + t * C;
      float s = 0;
      for (int64_t c = 0; c < C; c++) s += x[c] * w[size_t(c)];
      Y[t * R + r] = s;
    }
  }
}

nlohmann::json TTRowsMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  for (size_t j = 0; j < shape_.size(); j++)
    w.add_f32(fmt::format("{}.tt_core{}", prefix, j), {rows(), ranks_[j], shape_[j], ranks_[j + 1]}, cores_[j].data());
  return {{"format", "tt_rows"}, {"rows", rows()}, {"cols", cols()}, {"shape", shape_}, {"ranks", ranks_}};
}

void tt_rows_matmul_ref(const TTRowsMatrix& w, const float* X, int64_t n, float* Y) {
  const int64_t R = w.rows(), C = w.cols();
  const auto& d = w.shape();
  const auto& rk = w.ranks();
  const size_t K = d.size();
  std::vector<double> W(size_t(R * C));
  std::vector<int64_t> idx(K);
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++) {
      int64_t rest = c;  // row-major multi-index, last mode fastest
      for (size_t j = K; j-- > 0;) idx[j] = rest % d[j], rest /= d[j];
      std::vector<double> v(1, 1.0);  // the row vector v · G_1[:, i_1, :] ⋯ G_j[:, i_j, :]
      for (size_t j = 0; j < K; j++) {
        const float* G = w.core(j, r);
        std::vector<double> u(size_t(rk[j + 1]), 0.0);
        for (int64_t a = 0; a < rk[j]; a++)
          for (int64_t b = 0; b < rk[j + 1]; b++) u[size_t(b)] += v[size_t(a)] * G[(a * d[j] + idx[j]) * rk[j + 1] + b];
        v.swap(u);
      }
      W[size_t(r * C + c)] = v[0];
    }
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += W[size_t(r * C + c)] * X[t * C + c];
      Y[t * R + r] = float(s);
    }
}

WeightPtr load_tt_rows(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> shape, ranks;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    shape = spec.at("shape").get<std::vector<int64_t>>();
    ranks = spec.at("ranks").get<std::vector<int64_t>>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: tt_rows spec {} lacks rows/cols/shape/ranks ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(rows >= 1 && !shape.empty() && ranks.size() == shape.size() + 1 && product(shape) == cols,
        "{}: {}: inconsistent tt_rows spec {}", src.where(), prefix, spec.dump());
  std::vector<std::vector<float>> cores;
  for (size_t j = 0; j < shape.size(); j++) {
    const TensorView& t = src.get(fmt::format("{}.tt_core{}", prefix, j));
    std::vector<int64_t> want = {rows, ranks[j], shape[j], ranks[j + 1]};
    check(t.dtype == DType::F32 && t.shape == want, "{}: tensor {} is {} [{}], want F32 [{}]", src.where(), t.name,
          dtype_name(t.dtype), fmt::join(t.shape, ", "), fmt::join(want, ", "));
    cores.push_back(t.to_f32());
  }
  return std::make_unique<TTRowsMatrix>(rows, std::move(shape), std::move(ranks), std::move(cores));
}

}  // namespace lmp

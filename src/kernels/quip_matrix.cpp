#include "kernels/quip_matrix.h"

#include <cstring>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

QuipMatrix::QuipMatrix(WeightPtr inner, uint64_t seed_u, uint64_t seed_v)
    : WeightMatrix(inner ? inner->rows() : 0, inner ? inner->cols() : 0), inner_(std::move(inner)),
      u_(std::max<int64_t>(rows(), 1), seed_u), v_(std::max<int64_t>(cols(), 1), seed_v) {
  check(inner_ && rows() >= 1 && cols() >= 1, "quip: an inner matrix of at least 1 x 1 is required");
}

void QuipMatrix::matmul(const float* X, int64_t n, float* Y) const {
  // One scratch buffer per calling thread (calibration and perplexity run Forwards on several threads).
  thread_local std::vector<float> Xv;
  Xv.assign(X, X + n * cols());
  v_.forward_rows(Xv.data(), n);   // x' = V x
  inner_->matmul(Xv.data(), n, Y); // y' = Ŵ' x'
  u_.inverse_rows(Y, n);           // y = Uᵀ y'
}

void QuipMatrix::dequantize(float* W) const {
  const int64_t R = rows(), C = cols();
  inner_->dequantize(W);  // Ŵ'
  // Ŵ' V: row r becomes (Vᵀ ŵ'_r)ᵀ.
  v_.inverse_rows(W, R);
  // Uᵀ (Ŵ' V): each column c ← Uᵀ c.
  std::vector<float> col(static_cast<size_t>(R));
  for (int64_t c = 0; c < C; c++) {
    for (int64_t r = 0; r < R; r++) col[size_t(r)] = W[r * C + c];
    u_.inverse(col.data());
    for (int64_t r = 0; r < R; r++) W[r * C + c] = col[size_t(r)];
  }
}

nlohmann::json QuipMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  nlohmann::json inner = inner_->save(w, prefix + ".inner");
  const int64_t seeds[2] = {int64_t(u_.seed()), int64_t(v_.seed())};
  w.add(prefix + ".rht_seeds", DType::I64, {2}, seeds, sizeof(seeds));
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"inner", inner}};
}

void quip_matmul_ref(const QuipMatrix& w, const float* X, int64_t n, float* Y,
                     void (*inner_ref)(const WeightMatrix& inner, const float* X, int64_t n, float* Y)) {
  const int64_t R = w.rows(), C = w.cols();
  std::vector<double> xd(static_cast<size_t>(C)), yd(static_cast<size_t>(R));
  std::vector<float> Xv(size_t(n * C)), Yv(size_t(n * R));
  for (int64_t t = 0; t < n; t++) {
    for (int64_t c = 0; c < C; c++) xd[size_t(c)] = X[t * C + c];
    w.v().forward_ref(xd.data());
    for (int64_t c = 0; c < C; c++) Xv[size_t(t * C + c)] = float(xd[size_t(c)]);
  }
  inner_ref(w.inner(), Xv.data(), n, Yv.data());
  for (int64_t t = 0; t < n; t++) {
    for (int64_t r = 0; r < R; r++) yd[size_t(r)] = Yv[size_t(t * R + r)];
    w.u().inverse_ref(yd.data());
    for (int64_t r = 0; r < R; r++) Y[t * R + r] = float(yd[size_t(r)]);
  }
}

WeightPtr load_quip(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  WeightPtr in = load_inner_weight(src, prefix, spec, "quip");
  const TensorView& ts = src.get(prefix + ".rht_seeds");
  expect_tensor(src, ts, DType::I64, {2});
  int64_t seeds[2];
  std::memcpy(seeds, ts.data, sizeof(seeds));
  return std::make_unique<QuipMatrix>(std::move(in), uint64_t(seeds[0]), uint64_t(seeds[1]));
}

}  // namespace lmp

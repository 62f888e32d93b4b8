#include "kernels/lowrank.h"

#include <cblas.h>

#include <vector>

#include "core/error.h"
#include "kernels/weight_registry.h"

namespace lmp {

LowRankMatrix::LowRankMatrix(WeightPtr a, WeightPtr b)
    : WeightMatrix(a ? a->rows() : 0, b ? b->cols() : 0), a_(std::move(a)), b_(std::move(b)) {
  check(a_ && b_, "lowrank: both factors are required");
  check(a_->cols() >= 1 && a_->cols() == b_->rows(), "lowrank: factor shapes [{}, {}] · [{}, {}] do not chain",
        a_->rows(), a_->cols(), b_->rows(), b_->cols());
}

void LowRankMatrix::matmul(const float* X, int64_t n, float* Y) const {
  // One scratch buffer per calling thread (calibration and perplexity run Forwards on several threads).
  thread_local std::vector<float> T;
  T.resize(size_t(n * rank()));
  b_->matmul(X, n, T.data());  // T (n, k) = X · Bᵀ
  a_->matmul(T.data(), n, Y);  // Y (n, m) = T · Aᵀ
}

void LowRankMatrix::dequantize(float* W) const {
  std::vector<float> A = a_->dense(), B = b_->dense();  // (m, k), (k, n)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows()), int(cols()), int(rank()), 1.0f, A.data(),
              int(rank()), B.data(), int(cols()), 0.0f, W, int(cols()));
}

nlohmann::json LowRankMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  return {{"format", "lowrank"},
          {"rank", rank()},
          {"a", a_->save(w, prefix + ".lr_a")},
          {"b", b_->save(w, prefix + ".lr_b")}};
}

const LowRankMatrix* as_lowrank(const WeightMatrix& w) { return dynamic_cast<const LowRankMatrix*>(&w); }

void lowrank_matmul_ref(const LowRankMatrix& w, const float* X, int64_t n, float* Y) {
  const int64_t m = w.rows(), c = w.cols(), k = w.rank();
  std::vector<float> A = w.a().dense(), B = w.b().dense();
  std::vector<double> t(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; i++) {
    for (int64_t r = 0; r < k; r++) {
      double s = 0;
      for (int64_t j = 0; j < c; j++) s += double(B[size_t(r * c + j)]) * X[i * c + j];
      t[size_t(r)] = s;
    }
    for (int64_t o = 0; o < m; o++) {
      double s = 0;
      for (int64_t r = 0; r < k; r++) s += double(A[size_t(o * k + r)]) * t[size_t(r)];
      Y[i * m + o] = float(s);
    }
  }
}

WeightPtr load_lowrank(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  check(spec.contains("a") && spec["a"].is_object() && spec.contains("b") && spec["b"].is_object(),
        "{}: {} has format lowrank but its spec lacks the factor specs 'a' and 'b'", src.where(), prefix);
  WeightPtr a = load_weight(src, prefix + ".lr_a", spec["a"]);
  WeightPtr b = load_weight(src, prefix + ".lr_b", spec["b"]);
  check(a->cols() == b->rows(), "{}: {} factors [{}, {}] · [{}, {}] do not chain", src.where(), prefix, a->rows(),
        a->cols(), b->rows(), b->cols());
  if (spec.contains("rank"))
    check(spec["rank"].is_number_integer() && spec["rank"].get<int64_t>() == a->cols(),
          "{}: {} spec rank {} disagrees with its factors (rank {})", src.where(), prefix, spec["rank"].dump(),
          a->cols());
  return std::make_unique<LowRankMatrix>(std::move(a), std::move(b));
}

}  // namespace lmp

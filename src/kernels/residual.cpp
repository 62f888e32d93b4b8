#include "kernels/residual.h"

#include <vector>

#include "core/error.h"
#include "kernels/weight_registry.h"

namespace lmp {

ResidualMatrix::ResidualMatrix(WeightPtr base, WeightPtr corr)
    : WeightMatrix(base ? base->rows() : 0, base ? base->cols() : 0), base_(std::move(base)), corr_(std::move(corr)) {
  check(base_ && corr_, "residual: both parts are required");
  check(corr_->rows() == rows() && corr_->cols() == cols(), "residual: base [{}, {}] and correction [{}, {}] differ",
        rows(), cols(), corr_->rows(), corr_->cols());
}

void ResidualMatrix::matmul(const float* X, int64_t n, float* Y) const {
  thread_local std::vector<float> T;  // one scratch per calling thread (perplexity runs Forwards in parallel)
  base_->matmul(X, n, Y);
  T.resize(size_t(n * rows()));
  corr_->matmul(X, n, T.data());
  for (size_t i = 0; i < T.size(); i++) Y[i] += T[i];
}

void ResidualMatrix::dequantize(float* W) const {
  base_->dequantize(W);
  std::vector<float> C = corr_->dense();
  for (size_t i = 0; i < C.size(); i++) W[i] += C[i];
}

nlohmann::json ResidualMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  return {{"format", format()}, {"base", base_->save(w, prefix + ".base")}, {"corr", corr_->save(w, prefix + ".corr")}};
}

void residual_matmul_ref(const ResidualMatrix& w, const float* X, int64_t n, float* Y) {
  const int64_t R = w.rows(), C = w.cols();
  std::vector<float> B = w.base().dense(), E = w.corr().dense();
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += (double(B[size_t(r * C + c)]) + E[size_t(r * C + c)]) * X[t * C + c];
      Y[t * R + r] = float(s);
    }
}

WeightPtr load_residual(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  check(spec.contains("base") && spec["base"].is_object() && spec.contains("corr") && spec["corr"].is_object(),
        "{}: {} has format residual but its spec lacks the part specs 'base' and 'corr'", src.where(), prefix);
  WeightPtr base = load_weight(src, prefix + ".base", spec["base"]);
  WeightPtr corr = load_weight(src, prefix + ".corr", spec["corr"]);
  check(base->rows() == corr->rows() && base->cols() == corr->cols(), "{}: {} parts [{}, {}] and [{}, {}] differ",
        src.where(), prefix, base->rows(), base->cols(), corr->rows(), corr->cols());
  return std::make_unique<ResidualMatrix>(std::move(base), std::move(corr));
}

}  // namespace lmp

#include "kernels/w4a8.h"

#include "core/error.h"
#include "io/safetensors.h"

namespace lmp {

W4A8Matrix::W4A8Matrix(std::unique_ptr<QIntMatrix> w) : WeightMatrix(w->rows(), w->cols()), w_(std::move(w)) {
  check(w_->grid().bits == 4, "W4A8Matrix: weights must be 4-bit, got {}", w_->grid().bits);
}

void w4a8_matmul(const W4A8Matrix& m, const float* X, int64_t n, QIntIsa isa, float* Y) {
  thread_local QActs a_tls;  // bound by reference: the kernel's threads read the caller's activations
  QActs& a = a_tls;
  quantize_acts(X, n, m.cols(), m.weights().grid(), &a, /*per_token=*/true);
  qint_matmul_acts(m.weights(), a, isa, Y);
}

void W4A8Matrix::matmul(const float* X, int64_t n, float* Y) const { w4a8_matmul(*this, X, n, qint_isa(), Y); }

nlohmann::json W4A8Matrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  nlohmann::json spec = w_->save(w, prefix);
  spec["format"] = format();
  spec["act"] = "per_token_int8";
  return spec;
}

WeightPtr load_w4a8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  nlohmann::json inner = spec;
  const std::string name = spec.value("format", "");
  check(name.rfind("w4a8_", 0) == 0 && spec.value("act", "") == "per_token_int8",
        "{}: {}: spec {} is not a W4A8 format", src.where(), prefix, spec.dump());
  inner["format"] = name.substr(5);
  inner.erase("act");
  WeightPtr w = load_qint(src, prefix, inner);
  std::unique_ptr<QIntMatrix> q(static_cast<QIntMatrix*>(w.release()));
  return std::make_unique<W4A8Matrix>(std::move(q));
}

}  // namespace lmp

#include "kernels/shifted.h"

#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

ShiftedMatrix::ShiftedMatrix(WeightPtr inner, std::vector<float> shift)
    : WeightMatrix(inner ? inner->rows() : 0, inner ? inner->cols() : 0), inner_(std::move(inner)), shift_(std::move(shift)) {
  check(inner_ != nullptr, "shift: the inner matrix is required");
  check(int64_t(shift_.size()) == cols(), "shift: {} shifts for {} input columns", shift_.size(), cols());
}

void ShiftedMatrix::matmul(const float* X, int64_t n, float* Y) const {
  thread_local std::vector<float> Xs;
  const int64_t C = cols();
  Xs.resize(size_t(n * C));
  for (int64_t t = 0; t < n; t++)
    for (int64_t c = 0; c < C; c++) Xs[size_t(t * C + c)] = X[t * C + c] - shift_[size_t(c)];
  inner_->matmul(Xs.data(), n, Y);
}

nlohmann::json ShiftedMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add_f32(prefix + ".shift", {cols()}, shift_.data());
  return {{"format", format()}, {"inner", inner_->save(w, prefix + ".inner")}};
}

WeightPtr load_shifted(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  check(spec.contains("inner") && spec["inner"].is_object(), "{}: {} has format shift but its spec lacks 'inner'",
        src.where(), prefix);
  WeightPtr inner = load_weight(src, prefix + ".inner", spec["inner"]);
  const TensorView& t = src.get(prefix + ".shift");
  check(t.dtype == DType::F32 && t.shape == std::vector<int64_t>{inner->cols()}, "{}: tensor {} is {} [{}], want F32 [{}]",
        src.where(), t.name, dtype_name(t.dtype), fmt::join(t.shape, ", "), inner->cols());
  std::vector<float> z(static_cast<size_t>(inner->cols()));
  std::memcpy(z.data(), t.data, z.size() * 4);
  return std::make_unique<ShiftedMatrix>(std::move(inner), std::move(z));
}

}  // namespace lmp

#include "kernels/permuted.h"

#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

PermutedInputMatrix::PermutedInputMatrix(WeightPtr inner, std::vector<int32_t> perm)
    : WeightMatrix(inner->rows(), inner->cols()), inner_(std::move(inner)), perm_(std::move(perm)) {
  check(int64_t(perm_.size()) == cols(), "perm_in: permutation of {} entries for {} columns", perm_.size(), cols());
  std::vector<char> seen(perm_.size(), 0);
  for (int32_t p : perm_) {
    check(p >= 0 && p < cols() && !seen[size_t(p)], "perm_in: entry {} is not part of a permutation of 0..{}", p,
          cols() - 1);
    seen[size_t(p)] = 1;
  }
}

void PermutedInputMatrix::matmul(const float* X, int64_t n, float* Y) const {
  const int64_t C = cols();
  std::vector<float> Xp(size_t(n * C));
#pragma omp parallel for schedule(static) if (n * C > (1 << 16))
  for (int64_t t = 0; t < n; t++) {
    const float* x = X + t * C;
    float* xp = Xp.data() + t * C;
    for (int64_t j = 0; j < C; j++) xp[j] = x[perm_[size_t(j)]];
  }
  inner_->matmul(Xp.data(), n, Y);
}

void PermutedInputMatrix::dequantize(float* W) const {
  const int64_t C = cols();
  std::vector<float> I = inner_->dense();
  for (int64_t r = 0; r < rows(); r++)
    for (int64_t j = 0; j < C; j++) W[r * C + perm_[size_t(j)]] = I[size_t(r * C + j)];
}

nlohmann::json PermutedInputMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  nlohmann::json inner = inner_->save(w, prefix + ".inner");
  w.add(prefix + ".perm", DType::I32, {cols()}, perm_.data(), perm_.size() * 4);
  return {{"format", format()}, {"rows", rows()}, {"cols", cols()}, {"inner", inner}};
}

std::vector<float> permute_columns(const float* W, int64_t rows, int64_t cols, const std::vector<int32_t>& perm) {
  std::vector<float> out(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) out[size_t(r * cols + j)] = W[r * cols + perm[size_t(j)]];
  return out;
}

WeightPtr load_permuted(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  WeightPtr in = load_inner_weight(src, prefix, spec, "perm_in");
  const int64_t cols = in->cols();
  const TensorView& tp = src.get(prefix + ".perm");
  check(tp.dtype == DType::I32 && tp.shape == std::vector<int64_t>{cols}, "{}: tensor {} is {} [{}], want I32 [{}]",
        src.where(), tp.name, dtype_name(tp.dtype), fmt::join(tp.shape, ", "), cols);
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  std::memcpy(perm.data(), tp.data, size_t(cols) * 4);
  try {
    return std::make_unique<PermutedInputMatrix>(std::move(in), std::move(perm));
  } catch (const Error& e) {
    fail("{}: {}: {}", src.where(), prefix, e.what());
  }
}

}  // namespace lmp

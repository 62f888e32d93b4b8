#include "train/mixed_precision.h"

#include <algorithm>

#include "core/error.h"
#include "core/half.h"

namespace lmp::train {

Precision parse_precision(const std::string& s) {
  if (s == "f32" || s == "fp32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  if (s == "f16" || s == "fp16") return Precision::F16;
  fail("--precision '{}' is not known (choose f32, bf16, f16)", s);
}

const char* precision_name(Precision p) {
  return p == Precision::BF16 ? "bf16" : p == Precision::F16 ? "f16" : "f32";
}

template <class T>
void round_to_precision(Precision p, T* x, size_t n) {
  if (p == Precision::F32) return;
  if (p == Precision::BF16) {
#pragma omp parallel for if (n > 1 << 16)
    for (size_t i = 0; i < n; i++) x[i] = T(bf16_to_f32(f32_to_bf16(float(x[i]))));
  } else {
#pragma omp parallel for if (n > 1 << 16)
    for (size_t i = 0; i < n; i++) x[i] = T(f16_to_f32(f32_to_f16(float(x[i]))));
  }
}

template <class T>
const T* rounded(Precision p, const T* x, size_t n, std::vector<T>& scratch) {
  if (p == Precision::F32) return x;
  scratch.assign(x, x + n);
  round_to_precision(p, scratch.data(), n);
  return scratch.data();
}

template void round_to_precision<float>(Precision, float*, size_t);
template void round_to_precision<double>(Precision, double*, size_t);
template const float* rounded<float>(Precision, const float*, size_t, std::vector<float>&);
template const double* rounded<double>(Precision, const double*, size_t, std::vector<double>&);

LossScaler::LossScaler(const LossScaleConfig& c) : c_(c), s_(c.init) {
  check(c.init > 0 && std::isfinite(c.init), "--loss-scale must be a positive number (got {})", c.init);
  check(c.window > 0, "--loss-scale-window must be positive (got {})", c.window);
}

void LossScaler::scale_grad(float* g, size_t n) const {
  const float s = float(s_);
  for (size_t i = 0; i < n; i++) g[i] *= s;
}

void LossScaler::update(bool finite) {
  if (!finite) {
    skipped_++;
    good_ = 0;
    if (c_.dynamic) s_ = std::max(s_ * 0.5, 1.0 / 65536.0);
    return;
  }
  if (c_.dynamic && ++good_ >= c_.window) {
    s_ = std::min(s_ * 2, c_.max_scale);
    good_ = 0;
  }
}

}  // namespace lmp::train

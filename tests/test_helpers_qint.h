// Helpers for the quantized-kernel tests: the one definition of the error metrics they use, random data,
// and a TensorSource over one safetensors file.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight.h"
#include "kernels/weight_registry.h"
#include "testutil.h"

namespace lmp::testq {

// max_i |a_i − b_i| / max_i |b_i|: error relative to the reference's scale (b is the reference).
inline double max_rel_err(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) num = std::max(num, std::fabs(double(a[i]) - b[i])), den = std::max(den, std::fabs(double(b[i])));
  return den > 0 ? num / den : num;
}

// Normal values with a per-row scale drawn from [0.1, 3] (so groups see different ranges).
inline std::vector<float> random_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::uniform_real_distribution<float> sd(0.1f, 3.0f);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++) {
    float s = sd(rng);
    for (int64_t c = 0; c < cols; c++) w[size_t(r * cols + c)] = s * nd(rng);
  }
  return w;
}

// Y (n, rows) = X (n, cols) · Wᵀ in double.
inline std::vector<float> matmul_double(const float* X, const float* W, int64_t n, int64_t rows, int64_t cols) {
  std::vector<float> Y(size_t(n * rows));
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < rows; r++) {
      double s = 0;
      for (int64_t c = 0; c < cols; c++) s += double(X[t * cols + c]) * W[r * cols + c];
      Y[size_t(t * rows + r)] = float(s);
    }
  return Y;
}

class FileSource final : public TensorSource {
 public:
  explicit FileSource(const std::string& path) : f_(std::make_shared<SafeTensorsFile>(path)) {}
  const TensorView& get(const std::string& name) const override {
    const TensorView* t = f_->find(name);
    check(t != nullptr, "{}: no tensor {}", f_->path(), name);
    return *t;
  }
  bool has(const std::string& name) const override { return f_->find(name) != nullptr; }
  std::string where() const override { return f_->path(); }
  std::shared_ptr<const void> keeper() const override { return f_; }

 private:
  std::shared_ptr<SafeTensorsFile> f_;
};

// Saves w to a safetensors file in a fresh directory and loads it back through the weight registry.
inline WeightPtr round_trip(const WeightMatrix& w, const std::string& tag) {
  std::string dir = test::temp_dir("rt_" + tag);
  SafeTensorsWriter wr;
  nlohmann::json spec = w.save(wr, "layer");
  wr.write(dir + "/w.safetensors");
  FileSource src(dir + "/w.safetensors");
  return load_weight(src, "layer", spec);
}

}  // namespace lmp::testq

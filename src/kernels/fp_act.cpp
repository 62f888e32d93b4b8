#include "kernels/fp_act.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "kernels/weight_registry.h"

namespace lmp {

FpActMatrix::FpActMatrix(WeightPtr w, LowFloat act)
    : WeightMatrix(w ? w->rows() : 0, w ? w->cols() : 0), w_(std::move(w)), act_(act) {
  check(w_ != nullptr, "fp_act: the weight matrix is required");
  check(lowfloat_spec(act).bits() == 8, "fp_act: activations must be FP8 (e4m3 or e5m2)");
}

void quantize_act_row(LowFloat f, const float* x, int64_t n, float* out) {
  float amax = 0;
  for (int64_t i = 0; i < n; i++) amax = std::max(amax, std::fabs(x[i]));
  if (!(amax > 0)) {
    for (int64_t i = 0; i < n; i++) out[i] = 0;
    return;
  }
  const float a = amax / lowfloat_max(f);
  const std::array<float, 256>& tab = lowfloat_table(f);
  for (int64_t i = 0; i < n; i++) out[i] = tab[lowfloat_encode(f, x[i] / a)] * a;
}

void FpActMatrix::matmul(const float* X, int64_t n, float* Y) const {
  thread_local std::vector<float> Xq;
  Xq.resize(size_t(n * cols()));
  for (int64_t t = 0; t < n; t++) quantize_act_row(act_, X + t * cols(), cols(), Xq.data() + t * cols());
  w_->matmul(Xq.data(), n, Y);
}

nlohmann::json FpActMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  return {{"format", format()}, {"act", lowfloat_spec(act_).name}, {"w", w_->save(w, prefix + ".w")}};
}

void fp_act_matmul_ref(const FpActMatrix& m, const float* X, int64_t n, float* Y) {
  const int64_t R = m.rows(), C = m.cols();
  std::vector<float> W = m.weights().dense(), xq(static_cast<size_t>(C));
  for (int64_t t = 0; t < n; t++) {
    quantize_act_row(m.act(), X + t * C, C, xq.data());
    for (int64_t r = 0; r < R; r++) {
      double s = 0;
      for (int64_t c = 0; c < C; c++) s += double(W[size_t(r * C + c)]) * xq[size_t(c)];
      Y[t * R + r] = float(s);
    }
  }
}

WeightPtr load_fp_act(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  LowFloat act = LowFloat::E4M3;
  check(spec.contains("w") && spec["w"].is_object() && spec.contains("act") && spec["act"].is_string() &&
            lowfloat_from_name(spec["act"].get<std::string>(), &act) && lowfloat_spec(act).bits() == 8,
        "{}: {} has format fp_act but its spec {} lacks 'w' or an FP8 'act' (e4m3, e5m2)", src.where(), prefix,
        spec.dump());
  return std::make_unique<FpActMatrix>(load_weight(src, prefix + ".w", spec["w"]), act);
}

}  // namespace lmp

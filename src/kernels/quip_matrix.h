// An incoherence-processed Linear, the stored form of QuIP / QuIP# (Chee et al. 2023, arXiv 2307.13304; Tseng et
// al. 2024, arXiv 2402.04396; quant/quip.cpp): W (m × n) is kept as the compressed W' = U·W·Vᵀ with the
// randomized Hadamard transforms U = T_m(seed_u), V = T_n(seed_v) of kernels/hadamard.h, so
//     y = W x = Uᵀ · W' · (V x).
// matmul: every activation row x → V x (fast Walsh–Hadamard, O(n log n)), the inner format's own kernel (the int
//         kernels for a QIntMatrix), every output row y' → Uᵀ y'. dequantize: Uᵀ · Ŵ' · V.
// Stored: "<p>.inner.*" (the inner format, e.g. int2_g32_asym codes + scales + zeros of W') and "<p>.rht_seeds"
//         I64 [2] = (seed_u, seed_v) — the transforms are rebuilt from them (16 bytes, counted in nbytes).
// Spec: {"format": "quip", "rows", "cols", "inner": <inner spec>}.
#pragma once
#include <memory>

#include "kernels/hadamard.h"
#include "kernels/weight.h"

namespace lmp {

class QuipMatrix final : public WeightMatrix {
 public:
  // inner: (rows, cols) holding W' = U W Vᵀ.
  QuipMatrix(WeightPtr inner, uint64_t seed_u, uint64_t seed_v);

  std::string format() const override { return "quip"; }
  size_t nbytes() const override { return inner_->nbytes() + 2 * sizeof(uint64_t); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& inner() const { return *inner_; }
  const RandomHadamard& u() const { return u_; }
  const RandomHadamard& v() const { return v_; }

 private:
  WeightPtr inner_;
  RandomHadamard u_, v_;
};

// Scalar reference in double: y = Uᵀ · inner_ref(V x), the transforms through the scalar Walsh–Hadamard and
// `inner_ref` the inner format's reference kernel (Y (n, rows) = X (n, cols) · Ŵ'ᵀ).
void quip_matmul_ref(const QuipMatrix& w, const float* X, int64_t n, float* Y,
                     void (*inner_ref)(const WeightMatrix& inner, const float* X, int64_t n, float* Y));

WeightPtr load_quip(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

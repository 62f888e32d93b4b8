// A low-rank Linear: W (m × n) ≈ A · B with A (m × k) and B (k × n), k < min(m, n). Each factor is itself a
// stored WeightMatrix (f32, f16 or a packed QIntMatrix), so quantized factors (LPLR, or RTN after a
// factorization) run on the existing kernels. Produced by src/lowrank/ (SVD, ASVD, LASER, LPLR).
//
//   matmul:  T (n_tok, k) = X (n_tok, n) · Bᵀ     — B's own kernel (B is a (rows = k, cols = n) matrix)
//            Y (n_tok, m) = T (n_tok, k) · Aᵀ     — A's own kernel (A is a (rows = m, cols = k) matrix)
//   cost:    k·(m + n) multiply-adds per token instead of m·n, so the format only pays when k(m+n) < m·n;
//            low-rank methods keep a Linear dense where it would not (lowrank_pays()).
//   nbytes:  A's bytes + B's bytes (both factors with all their side data).
//   storage: the factors are saved under two sub-prefixes, "<prefix>.lr_a.*" and "<prefix>.lr_b.*", and the
//            spec nests theirs: {"format": "lowrank", "rank": k, "a": <A's spec>, "b": <B's spec>}.
#pragma once
#include <memory>

#include "kernels/weight.h"

namespace lmp {

class LowRankMatrix final : public WeightMatrix {
 public:
  // A (m × k), B (k × n); throws lmp::Error when the inner dimensions disagree or k < 1.
  LowRankMatrix(WeightPtr a, WeightPtr b);
  std::string format() const override { return "lowrank"; }
  size_t nbytes() const override { return a_->nbytes() + b_->nbytes(); }
  int64_t n_params() const override { return a_->n_params() + b_->n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;  // A·B in f32 (sgemm)
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  int64_t rank() const { return a_->cols(); }
  const WeightMatrix& a() const { return *a_; }
  const WeightMatrix& b() const { return *b_; }

 private:
  WeightPtr a_, b_;
};

// Whether factors of rank k take fewer entries than the dense (m × n) matrix: k(m + n) < m·n.
inline bool lowrank_pays(int64_t m, int64_t n, int64_t k) { return k >= 1 && k * (m + n) < m * n; }

// The LowRankMatrix behind w, or nullptr when w is another format (for modifiers that treat factors specially).
const LowRankMatrix* as_lowrank(const WeightMatrix& w);

// Scalar reference: Y (n, m) = X (n, cols) · (Â·B̂)ᵀ in double from the dequantized factors, in the two-step order.
void lowrank_matmul_ref(const LowRankMatrix& w, const float* X, int64_t n, float* Y);

// Registry loader: "<prefix>.lr_a" / "<prefix>.lr_b" with the nested specs "a" / "b".
WeightPtr load_lowrank(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

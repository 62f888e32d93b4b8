// A Linear whose input channels are read in a stored order: Y = X[:, perm] · Innerᵀ, where Inner (rows × cols)
// is any stored format over the permuted columns (inner column j is input channel perm[j]).
// The stored form of E-Sparse's channel shuffle (prune/esparse.h): N:M groups are chosen over permuted
// channels, so the N:M matrix alone would compute X·Wᵀ over the wrong inputs; the permutation travels with it
// and is applied to x (one gather of n·cols floats per call, against the rows·cols/2 values the 2:4 kernel
// reads), which works for every Linear. Folding it into the producing layer instead is only possible for
// down_proj (permute gate/up rows); q/k/v/gate/up read the residual stream, shared by all layers, and o_proj's
// input could only be permuted within heads.
// Stored: "<p>.inner.*" (the inner format), "<p>.perm" I32 (cols), a permutation of 0..cols−1.
#pragma once
#include <memory>
#include <vector>

#include "kernels/weight.h"

namespace lmp {

class PermutedInputMatrix final : public WeightMatrix {
 public:
  PermutedInputMatrix(WeightPtr inner, std::vector<int32_t> perm);

  std::string format() const override { return "perm_in"; }
  size_t nbytes() const override { return inner_->nbytes() + perm_.size() * 4; }
  int64_t n_params() const override { return inner_->n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override;  // gather, then the inner kernel
  void dequantize(float* W) const override;                         // W[r, perm[j]] = Inner[r, j]
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const WeightMatrix& inner() const { return *inner_; }
  const std::vector<int32_t>& perm() const { return perm_; }

 private:
  WeightPtr inner_;
  std::vector<int32_t> perm_;
};

// W (rows × cols) with columns reordered: out[r, j] = W[r, perm[j]].
std::vector<float> permute_columns(const float* W, int64_t rows, int64_t cols, const std::vector<int32_t>& perm);

WeightPtr load_permuted(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

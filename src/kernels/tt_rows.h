// A matrix whose every row is stored as a tensor train (Matrix Product State): row v, reshaped row-major into
// a d_1 × … × d_K tensor (Π d_j = cols), is G_1[v] · G_2[v] ⋯ G_K[v], each core G_j[v] of shape
// (r_{j-1}, d_j, r_j) with r_0 = r_K = 1. This is how TensorGPT (lowrank/tensorgpt.h) stores a token embedding
// table: one small train per token, so looking a token up touches only its own cores.
//
//   stored:  K f32 tensors "<prefix>.tt_core<j>" of shape (rows, r_{j-1}, d_j, r_j); spec
//            {"format": "tt_rows", "rows", "cols", "shape": [d_1..d_K], "ranks": [r_0..r_K]}.
//   row v:   left-to-right contraction, P_j (d_1⋯d_j, r_j) = P_{j-1} · G_j[v] viewed (r_{j-1}, d_j·r_j);
//            cost Σ_j d_1⋯d_j · r_{j-1} · r_j multiply-adds (≈ cols·r for the last core).
//   matmul:  Y = X · Wᵀ one row of W at a time: the row is rebuilt from its cores into a cols-long buffer and
//            dotted with every X row. The LM head of a tied model runs this way (rows = vocabulary).
#pragma once
#include <vector>

#include "kernels/weight.h"

namespace lmp {

class TTRowsMatrix final : public WeightMatrix {
 public:
  // cores[j] holds rows × ranks[j] × shape[j] × ranks[j+1] floats; throws lmp::Error when shapes disagree.
  TTRowsMatrix(int64_t rows, std::vector<int64_t> shape, std::vector<int64_t> ranks,
               std::vector<std::vector<float>> cores);
  std::string format() const override { return "tt_rows"; }
  size_t nbytes() const override { return size_t(n_params()) * 4; }
  int64_t n_params() const override;
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  void dequantize_row(int64_t r, float* out) const override;
  bool row_lookup() const override { return true; }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  const std::vector<int64_t>& shape() const { return shape_; }
  const std::vector<int64_t>& ranks() const { return ranks_; }
  // Core j of row r: ranks[j] × shape[j] × ranks[j+1] floats, row-major.
  const float* core(size_t j, int64_t r) const { return cores_[j].data() + size_t(r) * core_size(j); }
  size_t core_size(size_t j) const { return size_t(ranks_[j] * shape_[j] * ranks_[j + 1]); }

 private:
  std::vector<int64_t> shape_, ranks_;
  std::vector<std::vector<float>> cores_;
};

// Scalar reference: every entry W[r, (i_1..i_K)] as the product of the K core slices G_j[r][:, i_j, :] in
// double (multi-index by multi-index, no shared contraction), then Y = X · Wᵀ in double.
void tt_rows_matmul_ref(const TTRowsMatrix& w, const float* X, int64_t n, float* Y);

// Registry loader.
WeightPtr load_tt_rows(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

// Mask selection shared by every pruning method (magnitude, Wanda, SparseGPT, DSnoT) and the choice of
// stored form for a pruned matrix. A mask is (rows × cols) bytes, 1 = pruned. Scores: lower = pruned first;
// ties go to the lower column index, so masks are deterministic.
//   unstructured per row:  in each row (or each row of a column range), the ⌊p·len⌋ lowest scores
//   one threshold per matrix: the ⌊p·rows·cols⌋ lowest scores of the whole matrix
//   N:M:                   N of every M consecutive columns of a row are kept (2:4 keeps 2 of 4): in each
//                          group the M − N lowest scores are pruned
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kernels/sparse.h"
#include "kernels/weight.h"

namespace lmp {

struct NMPattern {
  int n = 0, m = 0;  // N kept of every M; m == 0: unstructured
  bool active() const { return m > 0; }
};

struct SparsitySpec {
  double sparsity = 0.5;  // fraction pruned (N:M: 1 − N/M)
  NMPattern nm;
};

// "2:4" → {2, 4}; throws lmp::Error naming `opt` for malformed text or N ≥ M.
NMPattern parse_nm(const std::string& text, const std::string& opt);
// Checks sparsity ∈ (0, 1), N < M, cols % M == 0; `what` names the layer/option in the error.
void check_sparsity_spec(const SparsitySpec& s, int64_t cols, const std::string& what);

// ⌊p·count⌋: how many of `count` weights a fraction p prunes (the reference code's int(count · p)).
int64_t prune_count(int64_t count, double p);

// Columns [c0, c0 + len) of each row: the prune_count(len, p) lowest scores set mask = 1.
void mask_lowest_per_row(const float* scores, int64_t rows, int64_t cols, int64_t c0, int64_t len, double p,
                         uint8_t* mask);
// The prune_count(n, p) lowest of all n scores.
void mask_lowest_in_matrix(const float* scores, int64_t n, double p, uint8_t* mask);
// The k lowest of all n scores (exact count; SAMSP's allocated counts).
void mask_lowest_count(const float* scores, int64_t n, int64_t k, uint8_t* mask);
// Columns [c0, c0 + len) (len a multiple of M) of each row: in each group of M, the M − N lowest.
void mask_nm(const float* scores, int64_t rows, int64_t cols, int64_t c0, int64_t len, NMPattern nm, uint8_t* mask);
// The mask a spec asks for, per row (or N:M) over the whole width.
std::vector<uint8_t> select_mask(const float* scores, int64_t rows, int64_t cols, const SparsitySpec& s);

// W[i] = 0 where mask[i].
void apply_mask(float* W, const uint8_t* mask, int64_t n);

// How a pruned f32 matrix is stored: N:M → the N:M format (2:4, 4:8); unstructured → SparseBitmap when its
// sparsity ≥ sparse_min (smaller, and faster from ~50% on large matrices: bench/README.md), else dense f32
// with zeros.
struct StoreOptions {
  NMPattern nm;
  SparseValues values = SparseValues::F32;
  double sparse_min = 0.3;
};
WeightPtr store_pruned(int64_t rows, int64_t cols, const float* W, const StoreOptions& o, const std::string& what);

// Fraction of exact zeros.
double zero_fraction(const float* W, int64_t n);

}  // namespace lmp

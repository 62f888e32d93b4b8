#include "prune/mask.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/dense.h"

namespace lmp {

NMPattern parse_nm(const std::string& text, const std::string& opt) {
  NMPattern p;
  size_t colon = text.find(':');
  try {
    check(colon != std::string::npos, "");
    size_t a = 0, b = 0;
    p.n = std::stoi(text.substr(0, colon), &a);
    p.m = std::stoi(text.substr(colon + 1), &b);
    check(a == colon && b == text.size() - colon - 1, "");
  } catch (...) {
    fail("{} '{}': want N:M, e.g. 2:4 or 4:8", opt, text);
  }
  check(p.n >= 1 && p.m >= 2 && p.n < p.m, "{} {}:{}: need 1 ≤ N < M (N weights kept of every M)", opt, p.n, p.m);
  return p;
}

void check_sparsity_spec(const SparsitySpec& s, int64_t cols, const std::string& what) {
  if (s.nm.active()) {
    check(s.nm.n >= 1 && s.nm.n < s.nm.m, "{}: N:M {}:{} needs 1 ≤ N < M", what, s.nm.n, s.nm.m);
    check(cols % s.nm.m == 0, "{}: width {} is not divisible by M = {} ({}:{} sparsity)", what, cols, s.nm.m,
          s.nm.n, s.nm.m);
    return;
  }
  check(s.sparsity > 0 && s.sparsity < 1 && std::isfinite(s.sparsity), "{}: sparsity {} is outside (0, 1)", what,
        s.sparsity);
}

int64_t prune_count(int64_t count, double p) { return int64_t(std::floor(double(count) * p + 1e-9)); }

// Indices 0..n−1 of `scores` whose prune_count(n, p) lowest values (ties: lower index first) are marked.
static void mark_lowest(const float* scores, int64_t n, int64_t k, int64_t stride, uint8_t* mask,
                        std::vector<int64_t>& idx) {
  if (k <= 0) return;
  idx.resize(size_t(n));
  std::iota(idx.begin(), idx.end(), 0);
  auto less = [&](int64_t a, int64_t b) {
    float sa = scores[a * stride], sb = scores[b * stride];
    return sa < sb || (sa == sb && a < b);
  };
  if (k < n) std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), less);
  for (int64_t i = 0; i < std::min(k, n); i++) mask[idx[size_t(i)] * stride] = 1;
}

void mask_lowest_per_row(const float* scores, int64_t rows, int64_t cols, int64_t c0, int64_t len, double p,
                         uint8_t* mask) {
  const int64_t k = prune_count(len, p);
#pragma omp parallel if (rows * len > 65536)
  {
    std::vector<int64_t> idx;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) mark_lowest(scores + r * cols + c0, len, k, 1, mask + r * cols + c0, idx);
  }
}

void mask_lowest_in_matrix(const float* scores, int64_t n, double p, uint8_t* mask) {
  std::vector<int64_t> idx;
  mark_lowest(scores, n, prune_count(n, p), 1, mask, idx);
}

void mask_lowest_count(const float* scores, int64_t n, int64_t k, uint8_t* mask) {
  std::vector<int64_t> idx;
  mark_lowest(scores, n, k, 1, mask, idx);
}

void mask_nm(const float* scores, int64_t rows, int64_t cols, int64_t c0, int64_t len, NMPattern nm, uint8_t* mask) {
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = c0; g < c0 + len; g += nm.m)
      mark_lowest(scores + r * cols + g, nm.m, nm.m - nm.n, 1, mask + r * cols + g, idx);
}

std::vector<uint8_t> select_mask(const float* scores, int64_t rows, int64_t cols, const SparsitySpec& s) {
  std::vector<uint8_t> mask(size_t(rows * cols), 0);
  if (s.nm.active())
    mask_nm(scores, rows, cols, 0, cols, s.nm, mask.data());
  else
    mask_lowest_per_row(scores, rows, cols, 0, cols, s.sparsity, mask.data());
  return mask;
}

void apply_mask(float* W, const uint8_t* mask, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (mask[i]) W[i] = 0.0f;
}

double zero_fraction(const float* W, int64_t n) {
  int64_t z = 0;
  for (int64_t i = 0; i < n; i++) z += W[i] == 0.0f;
  return n > 0 ? double(z) / double(n) : 0.0;
}

WeightPtr store_pruned(int64_t rows, int64_t cols, const float* W, const StoreOptions& o, const std::string& what) {
  if (o.nm.active() && SparseNM::supported(o.nm.n, o.nm.m) && cols % o.nm.m == 0)
    return SparseNM::from_dense(rows, cols, W, o.nm.n, o.nm.m, o.values, what);
  if (zero_fraction(W, rows * cols) >= o.sparse_min) return SparseBitmap::from_dense(rows, cols, W, o.values);
  return std::make_unique<DenseF32>(rows, cols, std::vector<float>(W, W + rows * cols));
}

}  // namespace lmp

// Shared by the bench/*.cpp programs: seeded random matrices of real layer shapes, built once per shape.
#pragma once
#include <cstdint>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace lmp::bench {

inline std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0, 1);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// One N(0, 1) matrix per (rows, cols), kept between benchmarks: building them dominates otherwise.
inline const std::vector<float>& f32_matrix(int64_t rows, int64_t cols) {
  static std::map<std::pair<int64_t, int64_t>, std::vector<float>> cache;
  auto& w = cache[{rows, cols}];
  if (w.empty()) w = random_values(size_t(rows * cols), 1);
  return w;
}

}  // namespace lmp::bench

#include "kernels/hadamard.h"

#include <immintrin.h>

#include <cmath>

#include "core/error.h"

namespace lmp {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t pow2_floor(int64_t n) {
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

int log2i(int64_t p) { return p <= 1 ? 0 : 63 - __builtin_clzll(uint64_t(p)); }

// Unnormalized 8-point Walsh–Hadamard of one register: stages h = 1, 2, 4 (lane i of the result at stage h is
// v_i + v_{i^h} where bit h of i is clear, v_{i^h} − v_i where it is set — the scalar butterfly's a + b, a − b).
inline __m256 wht8(__m256 v) {
  __m256 s = _mm256_permute_ps(v, 0xB1);  // swap neighbours
  v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
  s = _mm256_permute_ps(v, 0x4E);  // swap pairs
  v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
  s = _mm256_permute2f128_ps(v, v, 1);  // swap halves
  return _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
}

}  // namespace

bool is_pow2(int64_t n) { return n >= 1 && (n & (n - 1)) == 0; }

template <typename T> void fwht_ref(T* x, int64_t p) {
  for (int64_t h = 1; h < p; h *= 2)
    for (int64_t i = 0; i < p; i += 2 * h)
      for (int64_t j = i; j < i + h; j++) {
        T a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
  const T s = T(1) / std::sqrt(T(p));
  for (int64_t i = 0; i < p; i++) x[i] *= s;
}
template void fwht_ref<float>(float*, int64_t);
template void fwht_ref<double>(double*, int64_t);

void fwht(float* x, int64_t p) {
  if (p < 8) return fwht_ref(x, p);
  for (int64_t i = 0; i < p; i += 8) _mm256_storeu_ps(x + i, wht8(_mm256_loadu_ps(x + i)));
  for (int64_t h = 8; h < p; h *= 2)
    for (int64_t i = 0; i < p; i += 2 * h)
      for (int64_t j = i; j < i + h; j += 8) {
        __m256 a = _mm256_loadu_ps(x + j), b = _mm256_loadu_ps(x + j + h);
        _mm256_storeu_ps(x + j, _mm256_add_ps(a, b));
        _mm256_storeu_ps(x + j + h, _mm256_sub_ps(a, b));
      }
  const __m256 s = _mm256_set1_ps(1.0f / std::sqrt(float(p)));
  for (int64_t i = 0; i < p; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), s));
}

RandomHadamard::RandomHadamard(int64_t n, uint64_t seed) : n_(n), seed_(seed) {
  check(n >= 1, "randomized Hadamard transform: dimension {} must be ≥ 1", n);
  std::vector<std::pair<int64_t, int64_t>> windows;
  if (seed == 0) {
    // the identity (no stages)
  } else if (is_pow2(n)) {
    windows = {{0, n}};
  } else {
    const int64_t p = pow2_floor(n);
    windows = {{0, p}, {n - p, p}, {0, p}};
  }
  uint64_t state = seed;
  for (auto [off, len] : windows) {
    Stage st{off, len, std::vector<float>(size_t(n))};
    uint64_t bits = 0;
    for (int64_t i = 0; i < n; i++) {
      if (i % 64 == 0) bits = splitmix64(state);
      st.sign[size_t(i)] = (bits >> (i % 64) & 1) ? -1.0f : 1.0f;
    }
    stages_.push_back(std::move(st));
  }
}

void RandomHadamard::forward(float* x) const {
  for (const Stage& st : stages_) {
    for (int64_t i = 0; i < n_; i++) x[i] *= st.sign[size_t(i)];
    fwht(x + st.off, st.len);
  }
}

void RandomHadamard::inverse(float* x) const {
  for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
    fwht(x + it->off, it->len);
    for (int64_t i = 0; i < n_; i++) x[i] *= it->sign[size_t(i)];
  }
}

template <typename T> void RandomHadamard::forward_ref(T* x) const {
  for (const Stage& st : stages_) {
    for (int64_t i = 0; i < n_; i++) x[i] *= T(st.sign[size_t(i)]);
    fwht_ref(x + st.off, st.len);
  }
}

template <typename T> void RandomHadamard::inverse_ref(T* x) const {
  for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) {
    fwht_ref(x + it->off, it->len);
    for (int64_t i = 0; i < n_; i++) x[i] *= T(it->sign[size_t(i)]);
  }
}
template void RandomHadamard::forward_ref<float>(float*) const;
template void RandomHadamard::forward_ref<double>(double*) const;
template void RandomHadamard::inverse_ref<float>(float*) const;
template void RandomHadamard::inverse_ref<double>(double*) const;

void RandomHadamard::forward_rows(float* X, int64_t count) const {
  for (int64_t t = 0; t < count; t++) forward(X + t * n_);
}

void RandomHadamard::inverse_rows(float* X, int64_t count) const {
  for (int64_t t = 0; t < count; t++) inverse(X + t * n_);
}

std::vector<double> RandomHadamard::matrix() const {
  std::vector<double> M(size_t(n_ * n_)), e(static_cast<size_t>(n_));
  for (int64_t j = 0; j < n_; j++) {
    std::fill(e.begin(), e.end(), 0.0);
    e[size_t(j)] = 1;
    forward_ref(e.data());
    for (int64_t i = 0; i < n_; i++) M[size_t(i * n_ + j)] = e[size_t(i)];
  }
  return M;
}

int64_t RandomHadamard::butterflies() const {
  int64_t b = 0;
  for (const Stage& st : stages_) b += st.len / 2 * log2i(st.len);
  return b;
}

}  // namespace lmp

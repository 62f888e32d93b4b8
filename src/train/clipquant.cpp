#include "train/clipquant.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace lmp::train {

namespace {

// One group's range and grid parameters (see the header).
template <class T>
struct GroupRange {
  T mn = 0, mx = 0, lo = 0, hi = 0;
  int64_t imn = -1, imx = -1;  // positions of the min (< 0) and max (> 0) element, −1 when 0 is the end
  T s = 1;
  int z = 0;
  bool degenerate = false;     // lo = hi = 0: params_for_range's ±1 fallback, no gradient to the range
  bool z_clamped = false;
};

template <class T>
GroupRange<T> group_range(const T* w, int64_t n, T a_lo, T a_hi, const QuantGrid& grid) {
  GroupRange<T> r;
  for (int64_t i = 0; i < n; i++) {
    if (w[i] < r.mn) r.mn = w[i], r.imn = i;
    if (w[i] > r.mx) r.mx = w[i], r.imx = i;
  }
  r.lo = a_lo * r.mn;
  r.hi = a_hi * r.mx;
  GroupParams p = params_for_range(float(r.lo), float(r.hi), grid);
  r.s = T(p.scale);
  r.z = p.zero;
  r.degenerate = float(r.lo) == 0 && float(r.hi) == 0;
  const double zr = std::nearbyint(-double(r.lo) / double(r.s));
  r.z_clamped = zr < 0 || zr > grid.maxq();
  return r;
}

// round(w/s + v) (half to even, as quantize_value).
template <class T>
T rounded(T w, T v, T s) {
  return T(std::nearbyint(w / s + v));
}

void check_grid(const QuantGrid& grid) {
  check(!grid.sym, "learnable clipping quantizer: symmetric grids are not supported (use an asymmetric grid)");
}

}  // namespace

template <class T>
void clipquant_forward(T* What, const T* W, const T* V, const T* a_lo, const T* a_hi, int O, int I,
                       const QuantGrid& grid) {
  check_grid(grid);
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  const T maxq = T(grid.maxq());
#pragma omp parallel for if (int64_t(O) * I > 1 << 16)
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t c0 = g * gs, n = std::min<int64_t>(gs, I - c0);
      const size_t base = size_t(o) * I + size_t(c0), gi = size_t(o) * G + size_t(g);
      const GroupRange<T> r = group_range(W + base, n, a_lo[gi], a_hi[gi], grid);
      for (int64_t i = 0; i < n; i++) {
        const T q = std::clamp(rounded(W[base + i], V ? V[base + i] : T(0), r.s) + T(r.z), T(0), maxq);
        What[base + i] = (q - T(r.z)) * r.s;
      }
    }
}

template <class T>
void clipquant_backward(T* dW, T* dV, T* da_lo, T* da_hi, const T* dWhat, const T* W, const T* V, const T* a_lo,
                        const T* a_hi, int O, int I, const QuantGrid& grid) {
  check_grid(grid);
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  const T maxq = T(grid.maxq());
#pragma omp parallel for if (int64_t(O) * I > 1 << 16)
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t c0 = g * gs, n = std::min<int64_t>(gs, I - c0);
      const size_t base = size_t(o) * I + size_t(c0), gi = size_t(o) * G + size_t(g);
      const GroupRange<T> r = group_range(W + base, n, a_lo[gi], a_hi[gi], grid);
      T Gs = 0, Gz = 0;  // Σ dŵ·∂ŵ/∂s (z fixed), Σ dŵ·∂ŵ/∂z
      for (int64_t i = 0; i < n; i++) {
        const T w = W[base + i], d = dWhat[base + i];
        const T rq = rounded(w, V ? V[base + i] : T(0), r.s), q = rq + T(r.z);
        if (q < 0 || q > maxq) {
          Gs += d * ((q < 0 ? T(0) : maxq) - T(r.z));
          Gz -= d * r.s;
        } else {
          Gs += d * (rq - w / r.s);
          if (dW) dW[base + i] += d;
          if (dV) dV[base + i] += d * r.s;
        }
      }
      if (r.degenerate) continue;
      const T s = r.s, dz_dlo = r.z_clamped ? T(0) : -1 / s - r.lo / (s * s * maxq);
      const T dz_dhi = r.z_clamped ? T(0) : r.lo / (s * s * maxq);
      const T dlo = -Gs / maxq + Gz * dz_dlo, dhi = Gs / maxq + Gz * dz_dhi;
      if (da_lo) da_lo[gi] += dlo * r.mn;
      if (da_hi) da_hi[gi] += dhi * r.mx;
      if (dW && r.imn >= 0) dW[base + size_t(r.imn)] += dlo * a_lo[gi];
      if (dW && r.imx >= 0) dW[base + size_t(r.imx)] += dhi * a_hi[gi];
    }
}

std::unique_ptr<QIntMatrix> clipquant_store(const float* W, const float* V, const float* a_lo, const float* a_hi,
                                            int O, int I, const QuantGrid& grid) {
  check_grid(grid);
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  const float maxq = float(grid.maxq());
  std::vector<uint8_t> q(size_t(O) * I), z(size_t(O * G));
  std::vector<float> s(size_t(O * G));
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < G; g++) {
      const int64_t c0 = g * gs, n = std::min<int64_t>(gs, I - c0);
      const size_t base = size_t(o) * I + size_t(c0), gi = size_t(o) * G + size_t(g);
      const GroupRange<float> r = group_range(W + base, n, a_lo[gi], a_hi[gi], grid);
      s[gi] = r.s;
      z[gi] = uint8_t(r.z);
      for (int64_t i = 0; i < n; i++)
        q[base + i] = uint8_t(std::clamp(rounded(W[base + i], V ? V[base + i] : 0.0f, r.s) + float(r.z), 0.0f, maxq));
    }
  return QIntMatrix::from_codes(O, I, grid, q.data(), s.data(), z.data());
}

#define LMP_INSTANTIATE(T)                                                                                   \
  template void clipquant_forward<T>(T*, const T*, const T*, const T*, const T*, int, int, const QuantGrid&); \
  template void clipquant_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int, int, \
                                      const QuantGrid&);
LMP_INSTANTIATE(float)
LMP_INSTANTIATE(double)
#undef LMP_INSTANTIATE

}  // namespace lmp::train

#include "train/fakequant.h"

#include <algorithm>
#include <cmath>

#include "core/half.h"

namespace lmp::train {

static double group_err(const float* w, int64_t n, GroupParams p, int bits) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = double(w[i]) - double(dequant(quantize_value(w[i], p, bits), p));
    e += d * d;
  }
  return e;
}

void init_group_params(const float* W, int O, int I, const QuantGrid& grid, bool asym_clip, float* s, int* z) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
#pragma omp parallel for
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < G; g++) {
      const float* w = W + size_t(o) * I + g * gs;
      const int64_t n = std::min<int64_t>(gs, I - g * gs);
      GroupParams best = find_params(w, n, grid);
      if (asym_clip && !grid.sym) {
        float lo = 0, hi = 0;
        for (int64_t i = 0; i < n; i++) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
        double best_err = group_err(w, n, best, grid.bits);
        for (int a = 0; a <= 10; a++)
          for (int b = 0; b <= 10; b++) {
            GroupParams p = params_for_range(lo * (1 - 0.05f * a), hi * (1 - 0.05f * b), grid);
            double e = group_err(w, n, p, grid.bits);
            if (e < best_err) best_err = e, best = p;
          }
      }
      s[size_t(o) * G + g] = best.scale;
      z[size_t(o) * G + g] = best.zero;
    }
}

template <class T>
void fakequant_forward(T* What, const T* W, const T* s, const int* z, int O, int I, const QuantGrid& grid) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  const T maxq = T(grid.maxq());
#pragma omp parallel for if (int64_t(O) * I > 1 << 16)
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      const size_t gi = size_t(o) * G + size_t(i / gs);
      T q = std::clamp(T(std::nearbyint(W[size_t(o) * I + i] / s[gi])) + T(z[gi]), T(0), maxq);
      What[size_t(o) * I + i] = (q - T(z[gi])) * s[gi];
    }
}

template <class T>
void fakequant_backward(T* dW, T* ds, const T* dWhat, const T* W, const T* s, const int* z, int O, int I,
                        const QuantGrid& grid) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  const T maxq = T(grid.maxq());
#pragma omp parallel for if (int64_t(O) * I > 1 << 16)
  for (int o = 0; o < O; o++)
    for (int64_t g = 0; g < G; g++) {
      const size_t gi = size_t(o) * G + size_t(g);
      const T sc = s[gi], zz = T(z[gi]);
      T dsg = 0;
      for (int64_t i = g * gs; i < std::min<int64_t>(I, (g + 1) * gs); i++) {
        const size_t k = size_t(o) * I + size_t(i);
        const T r = W[k] / sc, qr = T(std::nearbyint(r)) + zz;
        const T d = dWhat[k];
        if (qr < 0 || qr > maxq) {  // clipped: ŵ = (qclip − z)·s, no gradient to w
          dsg += d * ((qr < 0 ? T(0) : maxq) - zz);
        } else {
          if (dW) dW[k] += d;
          dsg += d * (qr - zz - r);
        }
      }
      if (ds) ds[gi] += dsg;
    }
}

template <class T>
void peqa_forward(T* What, const uint8_t* q, const T* s, const int* z, int O, int I, const QuantGrid& grid) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      const size_t gi = size_t(o) * G + size_t(i / gs);
      What[size_t(o) * I + i] = (T(q[size_t(o) * I + i]) - T(z[gi])) * s[gi];
    }
}

template <class T>
void peqa_backward(T* ds, const T* dWhat, const uint8_t* q, const int* z, int O, int I, const QuantGrid& grid) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      const size_t gi = size_t(o) * G + size_t(i / gs);
      ds[gi] += dWhat[size_t(o) * I + i] * (T(q[size_t(o) * I + i]) - T(z[gi]));
    }
}

void codes_for(const float* W, int O, int I, const QuantGrid& grid, float* s, const int* z, uint8_t* q) {
  const int64_t gs = grid.group_size(I), G = grid.ngroups(I);
  for (int64_t k = 0; k < int64_t(O) * G; k++) s[k] = f16_to_f32(f32_to_f16(std::max(s[k], 6.1e-5f)));
  for (int o = 0; o < O; o++)
    for (int i = 0; i < I; i++) {
      const size_t gi = size_t(o) * G + size_t(i / gs);
      q[size_t(o) * I + i] = uint8_t(quantize_value(W[size_t(o) * I + i], {s[gi], z[gi]}, grid.bits));
    }
}

#define LMP_INSTANTIATE(T)                                                                                    \
  template void fakequant_forward<T>(T*, const T*, const T*, const int*, int, int, const QuantGrid&);        \
  template void fakequant_backward<T>(T*, T*, const T*, const T*, const T*, const int*, int, int,            \
                                      const QuantGrid&);                                                     \
  template void peqa_forward<T>(T*, const uint8_t*, const T*, const int*, int, int, const QuantGrid&);       \
  template void peqa_backward<T>(T*, const T*, const uint8_t*, const int*, int, int, const QuantGrid&);
LMP_INSTANTIATE(float)
LMP_INSTANTIATE(double)
#undef LMP_INSTANTIATE

}  // namespace lmp::train

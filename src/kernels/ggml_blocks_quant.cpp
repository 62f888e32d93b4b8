// Reference quantizers for ggml block formats (round-to-nearest for the 32-element formats, the weighted
// scale/min grid search for Q4_K). They follow the arithmetic of ggml's *_ref quantizers so that files
// lmpress writes match what llama-quantize would write for the same floats; compiled with
// -ffp-contract=off like the dequantizers.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "kernels/ggml_blocks.h"

namespace lmp {

// Round half to even (the default rounding mode), as ggml's nearest_int does.
static inline int nearest_int(float v) { return int(std::nearbyint(v)); }

// Value of largest magnitude in x[0..n) (the first one on ties), sign kept.
static float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; j++)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

static void min_max(const float* x, int n, float* lo, float* hi) {
  *lo = FLT_MAX;
  *hi = -FLT_MAX;
  for (int j = 0; j < n; j++) {
    *lo = std::min(*lo, x[j]);
    *hi = std::max(*hi, x[j]);
  }
}

// ---------------------------------------------------------------------------------------------------
// 32-element formats

// Q8_0: d = max|x| / 127, q = round(x / d) (half away from zero).
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; j++) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK; j++) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

// Q4_0: the largest-magnitude value maps to q = 0 exactly (d = max / -8), so the range is used asymmetrically.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, x += kQK) {
    const float d = signed_absmax(x, kQK) / -8;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQK / 2; j++) {
      const int q0 = std::min(15, int(x[j] * id + 8.5f));
      const int q1 = std::min(15, int(x[j + kQK / 2] * id + 8.5f));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// Q4_1: d = (max - min) / 15, m = min, q = floor((x - min) / d + 0.5).
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, x += kQK) {
    float lo, hi;
    min_max(x, kQK, &lo, &hi);
    const float d = (hi - lo) / 15;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(lo);
    for (int j = 0; j < kQK / 2; j++) {
      const int q0 = std::min(15, int((x[j] - lo) * id + 0.5f));
      const int q1 = std::min(15, int((x[j + kQK / 2] - lo) * id + 0.5f));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

// Packs 32 5-bit codes: low nibbles into qs (element j and j + 16 share byte j), fifth bits into qh.
static void pack_q5(const int q[kQK], uint8_t qs[kQK / 2], uint8_t qh[4]) {
  uint32_t h = 0;
  for (int j = 0; j < kQK / 2; j++) {
    qs[j] = uint8_t((q[j] & 0x0F) | ((q[j + kQK / 2] & 0x0F) << 4));
    h |= uint32_t((q[j] >> 4) & 1) << j;
    h |= uint32_t((q[j + kQK / 2] >> 4) & 1) << (j + kQK / 2);
  }
  for (int i = 0; i < 4; i++) qh[i] = uint8_t(h >> (8 * i));
}

// Q5_0: like Q4_0 with 32 levels: d = max / -16.
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, x += kQK) {
    const float d = signed_absmax(x, kQK) / -16;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    int q[kQK];
    for (int j = 0; j < kQK; j++) q[j] = std::min(31, int(x[j] * id + 16.5f));
    pack_q5(q, y[b].qs, y[b].qh);
  }
}

// Q5_1: like Q4_1 with 32 levels.
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, x += kQK) {
    float lo, hi;
    min_max(x, kQK, &lo, &hi);
    const float d = (hi - lo) / 31;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    y[b].m = f32_to_f16(lo);
    int q[kQK];
    for (int j = 0; j < kQK; j++) q[j] = std::min(31, int((x[j] - lo) * id + 0.5f));
    pack_q5(q, y[b].qs, y[b].qh);
  }
}

// ---------------------------------------------------------------------------------------------------
// Q4_K

// Fits x ≈ scale * L - mn (L in [0, nmax], mn >= 0) minimising Σ w (scale L - mn - x)²: start from the
// min/max grid, then try nstep + 1 stretched grids (nmax + rmin + rdelta * i levels over the range), for
// each solve the 2×2 weighted least-squares for (scale, min) with L fixed, keep the best. Returns scale.
static float fit_scale_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* mn, float rmin,
                           float rdelta, int nstep) {
  float lo = x[0], hi = x[0], sum_w = w[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; i++) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  lo = std::min(lo, 0.0f);
  if (hi == lo) {
    std::fill(L, L + n, uint8_t(0));
    *mn = -lo;
    return 0;
  }
  float iscale = float(nmax) / (hi - lo);
  float scale = 1 / iscale;
  float best = 0;
  for (int i = 0; i < n; i++) {
    L[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * float(L[i]) + lo - x[i];
    best += w[i] * (diff * diff);
  }
  uint8_t Lt[kQK_K];
  for (int step = 0; step <= nstep; step++) {
    iscale = (rmin + rdelta * float(step) + float(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; i++) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      Lt[i] = uint8_t(l);
      sum_l += w[i] * float(l);
      sum_l2 += w[i] * float(l) * float(l);
      sum_xl += w[i] * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float s = (sum_w * sum_xl - sum_x * sum_l) / D;
    float m = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (m > 0) {  // the offset may only lower values (x = s L + m with m <= 0)
      m = 0;
      s = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; i++) {
      const float diff = s * float(Lt[i]) + m - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best) {
      std::copy(Lt, Lt + n, L);
      best = err;
      scale = s;
      lo = m;
    }
  }
  *mn = -lo;
  return scale;
}

// Writes 6-bit scale sc and min m of sub-block j into Q4_K's 12 packed bytes (inverse of k4_scale_min).
static void k4_set_scale_min(int j, uint8_t sc, uint8_t m, uint8_t* s) {
  if (j < 4) {
    s[j] = uint8_t((s[j] & 0xC0) | sc);
    s[j + 4] = uint8_t((s[j + 4] & 0xC0) | m);
  } else {
    s[j + 4] = uint8_t((sc & 0x0F) | ((m & 0x0F) << 4));
    s[j - 4] |= uint8_t((sc >> 4) << 6);
    s[j] |= uint8_t((m >> 4) << 6);
  }
}

// Q4_K: per sub-block of 32 a weighted (w = rms(x) + |x|) scale/min fit, then the 8 scales and 8 mins are
// quantized to 6 bits against the super-block's d = max scale / 63 and dmin = max min / 63, and the codes
// are recomputed against the scales as stored.
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++, x += kQK_K) {
    uint8_t L[kQK_K];
    float scales[8], mins[8], w[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
      const float* xs = x + 32 * j;
      float sum_x2 = 0;
      for (int l = 0; l < 32; l++) sum_x2 += xs[l] * xs[l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; l++) w[l] = av_x + std::fabs(xs[l]);
      scales[j] = fit_scale_min(32, 15, xs, w, L + 32 * j, &mins[j], -1.0f, 0.1f, 20);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    std::memset(y[b].scales, 0, sizeof(y[b].scales));
    for (int j = 0; j < 8; j++) {
      const uint8_t ls = uint8_t(std::min(63, nearest_int(inv_scale * scales[j])));
      const uint8_t lm = uint8_t(std::min(63, nearest_int(inv_min * mins[j])));
      k4_set_scale_min(j, ls, lm, y[b].scales);
    }
    y[b].d = f32_to_f16(max_scale / 63.0f);
    y[b].dmin = f32_to_f16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      k4_scale_min(j, y[b].scales, &sc, &m);
      const float d = f16_to_f32(y[b].d) * float(sc);
      if (d == 0) continue;
      const float dm = f16_to_f32(y[b].dmin) * float(m);
      for (int l = 0; l < 32; l++) L[32 * j + l] = uint8_t(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, 15));
    }
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++) y[b].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

}  // namespace lmp

// IEEE binary16 (f16) and bfloat16 conversions, scalar; F16C is part of the x86-64-v3 baseline.
#pragma once
#include <cstdint>
#include <cstring>
#include <immintrin.h>

namespace lmp {

using f16_t = uint16_t;
using bf16_t = uint16_t;

inline float f16_to_f32(f16_t h) { return _cvtsh_ss(h); }
// Round-to-nearest-even, saturating to ±inf like the hardware instruction.
inline f16_t f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

inline float bf16_to_f32(bf16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round-to-nearest-even; NaN stays NaN.
inline bf16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16_t(u >> 16);
}

// Smallest f16 value ≥ s (s > 0), clamped to [2^-24, 65504]: a scale stored as f16 that still covers the
// range it was computed for (quantizer grids, W8A8, FP8/FP4 group scales).
inline float f16_ceil(float s) {
  const float lo = 5.9604645e-08f, hi = 65504.0f;
  if (!(s > lo)) return lo;  // also catches NaN
  if (s >= hi) return hi;
  f16_t h = f32_to_f16(s);
  if (f16_to_f32(h) < s) h = f16_t(h + 1);  // positive f16: the next bit pattern is the next value
  return f16_to_f32(h);
}

}  // namespace lmp

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

}  // namespace lmp

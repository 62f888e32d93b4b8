// Dequantizers of ggml's block formats and the traits table. Bit-exactness with ggml: each value is
// computed with the same float operations in the same order as ggml's reference dequantizers (checked
// against ggml-base in tests/interop). The products involved are exact in f32 (f16 scale × small integer),
// so multiply-add fusion could not change them; the ggml_blocks*.cpp files are still compiled with
// -ffp-contract=off (CMakeLists.txt) because the quantizers' least-squares sums would change under fusion,
// and ggml-base, where ggml's reference code lives, is built without FMA.
#include "kernels/ggml_blocks.h"

#include <cstring>

#include "core/error.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// Legacy 32-element blocks

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float(x[b].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(x[b].qs[j] >> 4) * d + m;
    }
  }
}

// Fifth bits of a Q5 block: element j (0..31) has bit j of the little-endian u32 qh.
static inline int q5_high(const uint8_t qh[4], int j) { return ((qh[j / 8] >> (j % 8)) & 1) << 4; }

void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float(((x[b].qs[j] & 0x0F) | q5_high(x[b].qh, j)) - 16) * d;
      y[j + kQK / 2] = float(((x[b].qs[j] >> 4) | q5_high(x[b].qh, j + 16)) - 16) * d;
    }
  }
}

void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d), m = f16_to_f32(x[b].m);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = float((x[b].qs[j] & 0x0F) | q5_high(x[b].qh, j)) * d + m;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) | q5_high(x[b].qh, j + 16)) * d + m;
    }
  }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK; j++) y[j] = float(x[b].qs[j]) * d;
  }
}

void dequantize_row_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK; b++, y += kQK) {
    const float d = f16_to_f32(x[b].d);
    for (int j = 0; j < kQK / 2; j++) {
      y[j] = d * float(kIQ4NLValues[x[b].qs[j] & 0x0F]);
      y[j + kQK / 2] = d * float(kIQ4NLValues[x[b].qs[j] >> 4]);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// K-quants. Q2_K/Q3_K/Q6_K walk each half (128 elements) as 4 groups of 32 that read the same 32 bytes of
// 2-bit fields at shifts 0, 2, 4, 6; every group of 32 is two 16-element sub-blocks with their own scales.

void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    int sub = 0;
    for (int half = 0; half < 2; half++) {
      const uint8_t* q = x[b].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2) {
        for (int part = 0; part < 2; part++, sub++) {
          const uint8_t sc = x[b].scales[sub];
          const float dl = d * float(sc & 0x0F), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; l++) *y++ = dl * float((q[16 * part + l] >> shift) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K's 16 6-bit scales: low 4 bits in bytes 0..7 (low nibbles for 0..7, high nibbles for 8..15), the
// two high bits in bytes 8..11 (scale i at bits 2*(i/4) of byte 8 + i%4). Stored with an offset of 32.
static inline int q3k_scale(const uint8_t s[12], int i) {
  const int lo = i < 8 ? (s[i] & 0x0F) : (s[i - 8] >> 4);
  const int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d);
    int sub = 0, hbit = 0;
    for (int half = 0; half < 2; half++) {
      const uint8_t* q = x[b].qs + 32 * half;
      for (int shift = 0; shift < 8; shift += 2, hbit++) {
        for (int part = 0; part < 2; part++, sub++) {
          const float dl = d * float(q3k_scale(x[b].scales, sub));
          for (int l = 16 * part; l < 16 * part + 16; l++) {
            const int v = ((q[l] >> shift) & 3) - ((x[b].hmask[l] >> hbit) & 1 ? 0 : 4);
            *y++ = dl * float(v);
          }
        }
      }
    }
  }
}

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int chunk = 0; chunk < 4; chunk++) {  // 64 elements: low nibbles, then high nibbles of 32 bytes
      const uint8_t* q = x[b].qs + 32 * chunk;
      uint8_t sc, m;
      k4_scale_min(2 * chunk, x[b].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      k4_scale_min(2 * chunk + 1, x[b].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; l++) *y++ = d1 * float(q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d), dmin = f16_to_f32(x[b].dmin);
    for (int chunk = 0; chunk < 4; chunk++) {
      const uint8_t* q = x[b].qs + 32 * chunk;
      const uint8_t* qh = x[b].qh;
      const int lo_bit = 2 * chunk, hi_bit = 2 * chunk + 1;
      uint8_t sc, m;
      k4_scale_min(2 * chunk, x[b].scales, &sc, &m);
      const float d1 = d * float(sc), m1 = dmin * float(m);
      k4_scale_min(2 * chunk + 1, x[b].scales, &sc, &m);
      const float d2 = d * float(sc), m2 = dmin * float(m);
      for (int l = 0; l < 32; l++) *y++ = d1 * float((q[l] & 0x0F) + (((qh[l] >> lo_bit) & 1) << 4)) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * float((q[l] >> 4) + (((qh[l] >> hi_bit) & 1) << 4)) - m2;
    }
  }
}

void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d);
    for (int half = 0; half < 2; half++, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* sc = x[b].scales + 8 * half;
      for (int l = 0; l < 32; l++) {
        const int s = l / 16;
        const int q0 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q1 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * float(sc[s]) * float(q0);
        y[l + 32] = d * float(sc[s + 2]) * float(q1);
        y[l + 64] = d * float(sc[s + 4]) * float(q2);
        y[l + 96] = d * float(sc[s + 6]) * float(q3);
      }
    }
  }
}

void dequantize_row_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t k) {
  for (int64_t b = 0; b < k / kQK_K; b++) {
    const float d = f16_to_f32(x[b].d);
    for (int sub = 0; sub < 8; sub++, y += 32) {
      const int lo = (x[b].scales_l[sub / 2] >> (4 * (sub % 2))) & 0x0F;
      const int hi = (x[b].scales_h >> (2 * sub)) & 3;
      const float dl = d * float((lo | (hi << 4)) - 32);
      const uint8_t* qs = x[b].qs + 16 * sub;
      for (int j = 0; j < 16; j++) {
        y[j] = dl * float(kIQ4NLValues[qs[j] & 0x0F]);
        y[j + 16] = dl * float(kIQ4NLValues[qs[j] >> 4]);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Plain float rows (block size 1). Unaligned-safe: tensor data in a GGUF is aligned, fuzz inputs are not.

static void f32_to_float(const void* x, float* y, int64_t k) { std::memcpy(y, x, size_t(k) * 4); }
static void f32_from_float(const float* x, void* y, int64_t k) { std::memcpy(y, x, size_t(k) * 4); }

static void f16_to_float(const void* x, float* y, int64_t k) {
  const auto* p = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < k; i++) {
    f16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    y[i] = f16_to_f32(h);
  }
}
static void f16_from_float(const float* x, void* y, int64_t k) {
  auto* p = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < k; i++) {
    f16_t h = f32_to_f16(x[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}
static void bf16_to_float(const void* x, float* y, int64_t k) {
  const auto* p = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < k; i++) {
    bf16_t h;
    std::memcpy(&h, p + 2 * i, 2);
    y[i] = bf16_to_f32(h);
  }
}
static void bf16_from_float(const float* x, void* y, int64_t k) {
  auto* p = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < k; i++) {
    bf16_t h = f32_to_bf16(x[i]);
    std::memcpy(p + 2 * i, &h, 2);
  }
}

// ---------------------------------------------------------------------------------------------------
// Traits table

namespace {
template <class B, void (*F)(const B*, float*, int64_t)>
void to_float_of(const void* x, float* y, int64_t k) {
  F(static_cast<const B*>(x), y, k);
}
template <class B, void (*F)(const float*, B*, int64_t)>
void from_float_of(const float* x, void* y, int64_t k) {
  F(x, static_cast<B*>(y), k);
}

template <class B, void (*Deq)(const B*, float*, int64_t), void (*Quant)(const float*, B*, int64_t) = nullptr>
constexpr GgmlTypeTraits block_type(GgmlType t, const char* name, int64_t qk) {
  GgmlFromFloat from = nullptr;
  if constexpr (Quant != nullptr) from = from_float_of<B, Quant>;
  return {t, name, qk, sizeof(B), to_float_of<B, Deq>, from};
}

const GgmlTypeTraits kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, f32_to_float, f32_from_float},
    {GgmlType::F16, "f16", 1, 2, f16_to_float, f16_from_float},
    {GgmlType::BF16, "bf16", 1, 2, bf16_to_float, bf16_from_float},
    block_type<BlockQ4_0, dequantize_row_q4_0, quantize_row_q4_0>(GgmlType::Q4_0, "q4_0", kQK),
    block_type<BlockQ4_1, dequantize_row_q4_1, quantize_row_q4_1>(GgmlType::Q4_1, "q4_1", kQK),
    block_type<BlockQ5_0, dequantize_row_q5_0, quantize_row_q5_0>(GgmlType::Q5_0, "q5_0", kQK),
    block_type<BlockQ5_1, dequantize_row_q5_1, quantize_row_q5_1>(GgmlType::Q5_1, "q5_1", kQK),
    block_type<BlockQ8_0, dequantize_row_q8_0, quantize_row_q8_0>(GgmlType::Q8_0, "q8_0", kQK),
    block_type<BlockQ2_K, dequantize_row_q2_K>(GgmlType::Q2_K, "q2_K", kQK_K),
    block_type<BlockQ3_K, dequantize_row_q3_K>(GgmlType::Q3_K, "q3_K", kQK_K),
    block_type<BlockQ4_K, dequantize_row_q4_K, quantize_row_q4_K>(GgmlType::Q4_K, "q4_K", kQK_K),
    block_type<BlockQ5_K, dequantize_row_q5_K>(GgmlType::Q5_K, "q5_K", kQK_K),
    block_type<BlockQ6_K, dequantize_row_q6_K>(GgmlType::Q6_K, "q6_K", kQK_K),
    block_type<BlockIQ4_NL, dequantize_row_iq4_nl>(GgmlType::IQ4_NL, "iq4_nl", kQK),
    block_type<BlockIQ4_XS, dequantize_row_iq4_xs>(GgmlType::IQ4_XS, "iq4_xs", kQK_K),
};
}  // namespace

std::span<const GgmlTypeTraits> ggml_types() { return kTypes; }

const GgmlTypeTraits* ggml_type_traits(uint32_t id) {
  for (const auto& t : kTypes)
    if (uint32_t(t.type) == id) return &t;
  return nullptr;
}

const GgmlTypeTraits* ggml_type_by_name(std::string_view name) {
  for (const auto& t : kTypes)
    if (name == t.name) return &t;
  return nullptr;
}

const GgmlTypeTraits& ggml_traits(GgmlType t) {
  const GgmlTypeTraits* p = ggml_type_traits(uint32_t(t));
  check(p != nullptr, "ggml type id {} is not supported", uint32_t(t));
  return *p;
}

size_t ggml_row_size(GgmlType t, int64_t n) {
  const GgmlTypeTraits& tr = ggml_traits(t);
  check(n >= 0 && n % tr.block_size == 0, "ggml type {}: row of {} elements is not a multiple of the block size {}",
        tr.name, n, tr.block_size);
  return size_t(n / tr.block_size) * tr.type_size;
}

}  // namespace lmp

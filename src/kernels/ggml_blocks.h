// ggml's tensor storage types (the block formats GGUF files carry), as plain structs, plus one traits table
// through which all generic code reaches them: type id (as stored in GGUF), name, elements per block, bytes
// per block, to_float (bit-exact with ggml's dequantizers) and, where lmpress has one, a reference
// from_float. A row of n weights is n / block_size consecutive blocks.
//
// Every scale "d"/"m"/"dmin" below is an IEEE half (f16_t). Layouts are little-endian byte images of the
// structs in ggml's ggml-common.h (GGUF stores tensor data exactly like this).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/half.h"

namespace lmp {

// The numeric ids are ggml's enum ggml_type, i.e. what a GGUF tensor info stores.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, IQ4_NL = 20, IQ4_XS = 23, BF16 = 30,
};

constexpr int kQK = 32;    // elements per block of the "legacy" formats (Q4_0 ... Q8_0, IQ4_NL)
constexpr int kQK_K = 256; // elements per super-block of the K-quants and IQ4_XS

// ---------------------------------------------------------------------------------------------------
// Legacy 32-element blocks

// Q4_0: x = d * (q - 8), q in [0, 15]. 4.5 bits/weight. Nibble j of byte i: element i (low) / i + 16 (high).
struct BlockQ4_0 {
  f16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q4_1: x = d * q + m, q in [0, 15]. 5 bits/weight.
struct BlockQ4_1 {
  f16_t d, m;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// Q5_0: x = d * (q - 16), q in [0, 31]; low 4 bits as in Q4_0, bit 4 of element j is bit j of qh (LE u32).
// 5.5 bits/weight.
struct BlockQ5_0 {
  f16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q5_1: x = d * q + m, q in [0, 31], bits as in Q5_0. 6 bits/weight.
struct BlockQ5_1 {
  f16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// Q8_0: x = d * q, q int8. 8.5 bits/weight.
struct BlockQ8_0 {
  f16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// IQ4_NL: x = d * kIQ4NLValues[q], q in [0, 15] (a fixed non-uniform 16-level grid), nibbles as in Q4_0.
// 4.5 bits/weight.
struct BlockIQ4_NL {
  f16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// ---------------------------------------------------------------------------------------------------
// 256-element super-blocks

// Q2_K: 16 sub-blocks of 16; x = d * (sc & 15) * q - dmin * (sc >> 4), q in [0, 3].
// qs: per 128 elements, 32 bytes; element 32*s + l (s = 0..3 shift pairs) is bits 2s..2s+1 of byte l.
// 2.625 bits/weight.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];  // low nibble: scale, high nibble: min
  uint8_t qs[kQK_K / 4];
  f16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 sub-blocks of 16; x = d * (s - 32) * (q - 4 * !hbit), q 2 low bits as in Q2_K, hmask holds the
// third bit; the 16 6-bit scales s are packed into 12 bytes. 3.4375 bits/weight.
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  f16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 sub-blocks of 32; x = d * sc * q - dmin * m, q in [0, 15], sc and m 6-bit (packed into 12 bytes:
// see k4_scale_min). qs: per 64 elements 32 bytes, low nibbles the first 32, high nibbles the next 32.
// 4.5 bits/weight.
struct BlockQ4_K {
  f16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit per element in qh (bit 2k / 2k+1 of qh[l] for the k-th 64-element chunk).
// 5.5 bits/weight.
struct BlockQ5_K {
  f16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16; x = d * sc * (q - 32), q 6-bit (4 low bits in ql, 2 high bits in qh), sc int8.
// 6.5625 bits/weight.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  f16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// IQ4_XS: 8 sub-blocks of 32; x = d * (s - 32) * kIQ4NLValues[q]; s 6-bit (4 low bits in scales_l, 2 high
// bits in scales_h); nibbles per sub-block as in IQ4_NL. 4.25 bits/weight.
struct BlockIQ4_XS {
  f16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// The IQ4_NL / IQ4_XS grid.
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// ---------------------------------------------------------------------------------------------------
// Row conversions; k (elements) must be a multiple of the block size. Dequantizers compute exactly the
// float expressions of ggml's reference code (this file's .cpp is compiled with -ffp-contract=off).

void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t k);
void dequantize_row_q4_1(const BlockQ4_1* x, float* y, int64_t k);
void dequantize_row_q5_0(const BlockQ5_0* x, float* y, int64_t k);
void dequantize_row_q5_1(const BlockQ5_1* x, float* y, int64_t k);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t k);
void dequantize_row_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t k);
void dequantize_row_q2_K(const BlockQ2_K* x, float* y, int64_t k);
void dequantize_row_q3_K(const BlockQ3_K* x, float* y, int64_t k);
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t k);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t k);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t k);
void dequantize_row_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t k);

// Reference (round-to-nearest / grid-search) quantizers, in ggml_blocks_quant.cpp.
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t k);
void quantize_row_q4_1(const float* x, BlockQ4_1* y, int64_t k);
void quantize_row_q5_0(const float* x, BlockQ5_0* y, int64_t k);
void quantize_row_q5_1(const float* x, BlockQ5_1* y, int64_t k);
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t k);
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t k);

// (scale, min) of sub-block j (0..7) from the 12 packed bytes of Q4_K/Q5_K: 6 bits each.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    *m = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// ---------------------------------------------------------------------------------------------------
// Traits table

using GgmlToFloat = void (*)(const void* blocks, float* y, int64_t k);
using GgmlFromFloat = void (*)(const float* x, void* blocks, int64_t k);

struct GgmlTypeTraits {
  GgmlType type;
  const char* name;           // ggml's spelling: "f32", "q4_0", "q4_K", "iq4_nl", ...
  int64_t block_size;         // elements per block (1 for f32/f16/bf16)
  size_t type_size;           // bytes per block
  GgmlToFloat to_float;       // always set
  GgmlFromFloat from_float;   // nullptr where lmpress has no quantizer for the type
  double bits_per_weight() const { return 8.0 * double(type_size) / double(block_size); }
};

std::span<const GgmlTypeTraits> ggml_types();
// nullptr when the id/name is not a type lmpress supports.
const GgmlTypeTraits* ggml_type_traits(uint32_t id);
const GgmlTypeTraits* ggml_type_by_name(std::string_view name);
// Traits of a supported type (never null).
const GgmlTypeTraits& ggml_traits(GgmlType t);
// Bytes of a row of n elements; n must be a multiple of the block size (throws lmp::Error otherwise).
size_t ggml_row_size(GgmlType t, int64_t n);

}  // namespace lmp

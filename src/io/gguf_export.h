// Exporting an lmpress Model as a llama.cpp GGUF file (architecture "llama"), the inverse of
// model/gguf_model.h: llama.* hyper-parameters, tokenizer.ggml.* from the model's tokenizer, tensors named
// and laid out as llama.cpp's converter writes them (attn_q/attn_k rows in the interleaved RoPE order),
// general.file_type from the most common projection type.
//
// Tensor types (--type):
//   auto   every Linear keeps its own values where a GGUF type holds them exactly:
//            dense f32 / f16                  -> F32 / F16 (copied)
//            ggml blocks (an imported GGUF)   -> the same block type (bytes copied)
//            int8 sym g32 (ŵ = (q−128)·s)     -> Q8_0 (d = s, q8 = q − 128: the same products, codes kept)
//            int4 sym g32 (ŵ = (q−8)·s)       -> Q4_0 (d = s, nibble = q: codes kept)
//          and is re-quantized from its dequantized values otherwise: other int8 grids -> Q8_0, int4 asym
//          g32 -> Q4_1 (its ŵ = q·d + m rounds differently from (q − z)·s), other ≤ 4-bit grids -> Q4_K;
//          formats with no GGUF counterpart (sparse, low-rank, ...) -> F32 of their dense values. The
//          embedding stays F32.
//   f32 | f16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1 | q4_k
//          every Linear (and the embedding) re-quantized to that type from its dequantized values
//          (copied when already of that type).
// A row width that the chosen type's block does not divide falls back as llama.cpp does (Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0; a legacy 32-block type -> F16), e.g. stories260K's ffn_down (172 wide) -> F16.
// Norms are always F32. Every decision is reported through the log callback (stderr by default).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kernels/ggml_blocks.h"
#include "model/model.h"

namespace lmp {

struct GgufExportOptions {
  std::string type = "auto";
  std::function<void(const std::string&)> log;  // one line per tensor decision; nullptr = stderr
};

struct GgufExportTensor {
  std::string name;  // GGUF tensor name ("blk.0.attn_q.weight")
  GgmlType type;
  std::string how;   // "copied", "codes kept (exact)", "re-quantized", "fallback ... (width N)"
};

struct GgufExportResult {
  std::vector<GgufExportTensor> tensors;
  size_t bytes = 0;  // file size
  uint32_t file_type = 0;
};

// Writes m to path atomically (tmp + rename); throws lmp::Error naming the path on an unsupported model
// (per-layer widths, Llama-3 RoPE scaling, a tokenizer without vocabulary data) or option.
GgufExportResult export_gguf(const Model& m, const std::string& path, const GgufExportOptions& opt = {});

}  // namespace lmp

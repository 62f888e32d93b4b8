// Export to the GPTQ ecosystem's safetensors layout (AutoGPTQ / exllama / vLLM "gptq", checkpoint_format
// "gptq", i.e. v1), from an lmpress model whose projections are group-wise int (QIntMatrix).
// (Lives in io/ but reads a Model: the export is a writer of the model, like save_model.)
//
// Per packed Linear "<name>" (out × in, b bits, group g; g = in when lmpress group is 0):
//   <name>.qweight  I32 (in·b/32, out)      codes packed along the INPUT dim: for output column o, the codes
//                                           q[o][0..in) form one little-endian bit stream, code k at bits
//                                           [k·b, k·b + b); 32-bit word i of that stream is qweight[i][o].
//                                           For b = 2/4/8 that is 32/b codes per int32; for b = 3 codes cross
//                                           word boundaries (10⅔ per word, AutoGPTQ's 3-word pattern).
//   <name>.qzeros   I32 (ngroups, out·b/32) zero points packed the same way along the OUTPUT dim, storing
//                                           zero − 1: the historical AutoGPTQ off-by-one ("v1") that the
//                                           kernels undo by adding 1 back. Symmetric: zero = 2^(b−1), stored
//                                           2^(b−1) − 1. An asymmetric zero of 0 cannot be stored this way.
//   <name>.scales   F16 (ngroups, out)      the QIntMatrix's f16 scales, bit for bit
//   <name>.g_idx    I32 (in)                group of input k = k / g (no act-order permutation: lmpress's
//                                           act-order keeps static contiguous groups, so desc_act is false)
//   <name>.bias     F16 (out)               when present
// Dequantized weight, as the kernels compute it: w[o][k] = (q[o][k] − (qzeros_val + 1)) · scale[g][o].
//
// Every other tensor (embedding, norms, lm_head, any Linear that cannot be packed) is written as F16
// ("torch_dtype": "float16", as GPTQ checkpoints are). config.json gets
//   "quantization_config": {"quant_method": "gptq", "bits", "group_size" (−1 = per output channel),
//                           "desc_act": false, "sym", "checkpoint_format": "gptq",
//                           "dynamic": {"-:^<name>$": {}, ...}}   // GPTQModel/vLLM: layers left unquantized
// Linears that cannot be packed — not group-wise int, a different grid from the model's first packed Linear,
// a group size that does not divide in_features (ragged last group, e.g. in 172, g 32), in·b or out·b not a
// multiple of 32, or an asymmetric zero of 0 — are written as F16 dequantized weights and listed in the
// report (or rejected with `strict`).
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/model.h"
#include "quant/grid.h"

namespace lmp {

struct GptqExportOptions {
  bool strict = false;  // reject, naming the layer, instead of writing F16 fallbacks
};

struct GptqExportReport {
  QuantGrid grid;
  int packed = 0;
  std::vector<std::pair<std::string, std::string>> fallback;  // (Linear name, why it was written as F16)
  size_t bytes = 0;                                          // model.safetensors size
};

// Writes OUT/{config.json, model.safetensors, tokenizer files}; built in a temporary directory, then renamed.
// Throws lmp::Error when no projection is group-wise int, or (strict) when one cannot be packed.
GptqExportReport export_gptq(const Model& m, const std::string& out_dir, const GptqExportOptions& o = {});

// Packs n codes of `bits` bits each into a little-endian stream of 32-bit words (code k at bits [k·b, k·b+b)).
// out has ceil(n·bits / 32) words and is overwritten.
void gptq_pack_stream(const uint32_t* codes, int64_t n, int bits, uint32_t* out);

}  // namespace lmp

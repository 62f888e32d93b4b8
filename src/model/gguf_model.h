// Importing llama.cpp's GGUF files as lmpress Models (architecture "llama"), and the pieces the GGUF
// exporter (io/gguf_export.h) shares with the importer: the q/k RoPE row order and the tokenizer mapping.
//
// Key names (llama.cpp's convert_hf_to_gguf.py / llama-model.cpp):
//   hyper-parameters  llama.{embedding_length, block_count, feed_forward_length, attention.head_count,
//                     attention.head_count_kv, attention.key_length, attention.layer_norm_rms_epsilon,
//                     rope.freq_base, rope.dimension_count, context_length, rope.scaling.{type, factor}}
//   tensors           token_embd, output_norm, output (absent: tied to token_embd),
//                     blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}
//   tokenizer         tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id, ...}
//
// RoPE row order. Hugging Face Llama checkpoints rotate halves: within a head of hs rows, row i and row
// i + hs/2 form a rotation pair. llama.cpp keeps the original interleaved order (rows 2i, 2i+1 pair up),
// so its converter permutes attn_q (per query head) and attn_k (per KV head):
//   gguf row  head·hs + 2i + h   =   hf row  head·hs + h·hs/2 + i      (h ∈ {0, 1}, i < hs/2).
// Rows are independent (a row of a block-quantized tensor is whole blocks), so importing permutes the
// stored rows — block bytes are moved, never dequantized — and exporting applies the inverse.
//
// What is kept as stored: every projection keeps its GGUF type (f32/f16 zero-copy on the mapped file,
// block types as GgmlBlockMatrix; q/k as a row-permuted copy of the same bytes); the embedding (a lookup
// table) and norms are dequantized to f32.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/tokenizer.h"
#include "model/model.h"

namespace lmp {

// True when path is a regular file starting with the GGUF magic.
bool is_gguf_file(const std::string& path);

// Loads a llama-architecture GGUF model (tensors mapped, tokenizer from metadata); throws lmp::Error naming
// the file on anything unsupported or inconsistent (other architecture, missing tensor, wrong shape).
std::unique_ptr<Model> load_gguf_model(const std::string& path);

// tokenizer.ggml.* -> BpeVocab ("llama" = SentencePiece BPE by scores, "gpt2" = byte-level BPE by merges).
BpeVocab gguf_vocab(const GgufFile& f);

// perm[hf_row] = gguf_row for a q or k weight of n_heads heads of head_dim rows (see the file comment).
std::vector<int64_t> rope_rows_hf_from_gguf(int64_t n_heads, int64_t head_dim);
// Copies rows of row_bytes bytes: dst row r = src row perm[r].
std::vector<uint8_t> permute_rows(const uint8_t* src, size_t row_bytes, const std::vector<int64_t>& perm);

}  // namespace lmp

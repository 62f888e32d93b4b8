// The Llama-family decoder as data: embedding, blocks of (RMSNorm, q/k/v/o, RMSNorm, gate/up/down), final
// norm and LM head. Every projection is a Linear whose weight is any stored format (kernels/weight.h),
// so a compressed model is the same struct with other WeightMatrix implementations inside.
#pragma once
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/tokenizer.h"
#include "kernels/weight.h"
#include "model/config.h"

namespace lmp {

// The seven projections of a block, in execution order. Their HF names are kLinearNames.
enum class LinearKind { Q, K, V, O, Gate, Up, Down };
constexpr int kLinearsPerBlock = 7;
constexpr std::array<const char*, kLinearsPerBlock> kLinearNames = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
std::string linear_name(int layer, LinearKind kind);  // "model.layers.3.self_attn.q_proj"

struct Linear {
  WeightPtr w;              // (out, in)
  std::vector<float> bias;  // (out) or empty
  // Y (n, out) = X (n, in) · Wᵀ + b
  void forward(const float* X, int64_t n, float* Y) const;
  int64_t in() const { return w->cols(); }
  int64_t out() const { return w->rows(); }
};

struct Block {
  std::vector<float> attn_norm;  // (C)
  std::vector<float> ffn_norm;   // (C)
  std::array<Linear, kLinearsPerBlock> lin;
  // SliceGPT (prune/slicegpt.h): the residual is multiplied by these (C, C) matrices before the attention /
  // MLP output is added, because consecutive sites live in different rotated bases. Absent (w null) = identity;
  // present only when cfg.residual_shortcuts.
  Linear attn_shortcut, mlp_shortcut;
  // WKVQuant (model/kv_cache.h): static per-channel smoothing of the cached K and V, (4, kv_heads · head_dim)
  // rows key shift δ, key scale s, value shift, value scale; empty = none. Stored as
  // "model.layers.<l>.self_attn.kv_smooth".
  std::vector<float> kv_smooth;
  Linear& at(LinearKind k) { return lin[int(k)]; }
  const Linear& at(LinearKind k) const { return lin[int(k)]; }
};

struct Model {
  ModelConfig cfg;
  std::string dir;                  // where it was loaded from (tokenizer files are read from here)
  // (V, C) f32. With a stored table (embed_w) it is that table's dequantization kept for lookups, or empty when
  // the format looks rows up itself (WeightMatrix::row_lookup, e.g. TensorGPT's tt_rows).
  std::vector<float> embed;
  // (V, C) the embedding table stored in a format of its own (int8 after RTN "lm_head": true, GGUF Q8_0, f16,
  // TensorGPT's tt_rows), or null for a plain f32 table. A tied head then runs on this one stored copy.
  WeightPtr embed_w;
  std::vector<float> final_norm;    // (C)
  // (V, C). Tied: borrows embed (f32), or -- a stored tied head, e.g. after RTN with "lm_head": true -- holds the
  // one stored copy of the table in its own format, embed then being its dequantization (what lookups read).
  Linear lm_head;
  std::vector<Block> blocks;        // (L)
  nlohmann::json recipe;            // the recipe that produced this model (null for an original checkpoint)

  const Tokenizer& tokenizer() const;  // loaded from dir on first use
  void set_tokenizer(std::unique_ptr<Tokenizer> t) { tok_ = std::move(t); }

  // Counting: parameters of every tensor, bytes as stored (weights in their formats, norms/embedding f32).
  int64_t n_params() const;
  size_t n_bytes() const;
  // Bits per weight over the projections (q..down), the part compression acts on.
  double linear_bits_per_weight() const;

  // Called when the tied head must stop borrowing embed (e.g. the embedding is about to change).
  // With a compressed embedding (embed_w) the tied head runs from that format's own kernel.
  void retie_head();
  // Row `id` of the embedding table, dense or compressed, into out (hidden floats).
  void embed_row(int id, float* out) const;
  // True when the head is tied and the table is stored in a format of its own (embed_w): saved, counted and
  // exported as that matrix ("model.embed_tokens" in quantization_config).
  bool tied_head_stored() const { return cfg.tie_embeddings && embed_w != nullptr; }
  // Stores the head as w (e.g. quantized by RTN / f16 with "lm_head": true). A tied head stays tied: w becomes
  // the stored table (embed_w) that lookups and logits share.
  void set_head(WeightPtr w);
  // Sets the stored table and, unless its format looks rows up itself, its dense copy for lookups.
  void set_embed_table(WeightPtr w);
  // Throws lmp::Error naming `what` when the table is stored compressed (for code that rewrites it densely).
  void require_dense_embed(const std::string& what) const;

 private:
  mutable std::unique_ptr<Tokenizer> tok_;
};

// Loads an HF-layout directory: config.json, model.safetensors (or sharded via model.safetensors.index.json),
// tokenizer files. Compressed lmpress outputs carry "quantization_config" (quant_method "lmpress") naming
// each Linear's stored format. Throws lmp::Error naming the file and problem.
std::unique_ptr<Model> load_model(const std::string& dir);
// Writes an HF-style directory loadable by load_model: config.json (+ quantization_config with the recipe),
// model.safetensors, tokenizer files copied from model.dir. Built in a temporary directory, then renamed.
void save_model(const Model& m, const std::string& out_dir);

}  // namespace lmp

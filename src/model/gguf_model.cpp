#include "model/gguf_model.h"

#include <cstring>
#include <fstream>

#include <fmt/ranges.h>

#include "core/error.h"
#include "kernels/dense.h"
#include "kernels/ggml_blocks_matrix.h"

namespace lmp {

bool is_gguf_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f && f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

std::vector<int64_t> rope_rows_hf_from_gguf(int64_t n_heads, int64_t head_dim) {
  const int64_t half = head_dim / 2;
  std::vector<int64_t> perm(size_t(n_heads * head_dim));
  for (int64_t h = 0; h < n_heads; h++)
    for (int64_t s = 0; s < 2; s++)
      for (int64_t i = 0; i < half; i++) perm[size_t(h * head_dim + s * half + i)] = h * head_dim + 2 * i + s;
  return perm;
}

std::vector<uint8_t> permute_rows(const uint8_t* src, size_t row_bytes, const std::vector<int64_t>& perm) {
  std::vector<uint8_t> out(perm.size() * row_bytes);
  for (size_t r = 0; r < perm.size(); r++) std::memcpy(out.data() + r * row_bytes, src + size_t(perm[r]) * row_bytes, row_bytes);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Tokenizer

namespace {

int optional_id(const GgufFile& f, const std::string& key, size_t n) {
  if (!f.has(key)) return -1;
  uint64_t id = f.get_uint(key);
  return id < n ? int(id) : -1;  // llama.cpp writes 0xFFFFFFFF for "none"
}

// llama.cpp's pre-tokenizer names (tokenizer.ggml.pre) that lmpress's regex splitter reproduces.
void set_pre_tokenizer(const GgufFile& f, const std::string& pre, BpeVocab* v) {
  if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2" || pre == "phi-2" || pre == "roberta-bpe" ||
      pre == "mpt" || pre == "olmo" || pre == "jais") {
    v->splits.push_back({kGpt2Pattern, false, false});
  } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3") {
    v->splits.push_back({kLlama3Pattern, false, false});
    v->ignore_merges = true;
  } else if (pre == "starcoder" || pre == "refact" || pre == "smollm" || pre == "codeshell" || pre == "exaone") {
    v->splits.push_back({"\\p{N}", false, false});
    v->splits.push_back({kGpt2Pattern, false, false});
  } else {
    fail("{}: tokenizer.ggml.pre '{}' is not supported (supported: default, gpt-2, llama-bpe, starcoder, ...)",
         f.path(), pre);
  }
}

}  // namespace

BpeVocab gguf_vocab(const GgufFile& f) {
  BpeVocab v;
  v.source = f.path();
  const std::string model = f.get_string("tokenizer.ggml.model");
  v.tokens = f.get_strings("tokenizer.ggml.tokens");
  const size_t n = v.tokens.size();
  check(n > 0, "{}: tokenizer.ggml.tokens is empty", f.path());
  if (f.has("tokenizer.ggml.token_type")) {
    auto types = f.get_ints("tokenizer.ggml.token_type");
    check(types.size() == n, "{}: tokenizer.ggml.token_type has {} entries for {} tokens", f.path(), types.size(), n);
    for (int64_t t : types) {
      check(t >= 1 && t <= 6, "{}: tokenizer.ggml.token_type value {} is not a known token type", f.path(), t);
      v.types.push_back(TokenType(t));
    }
  }
  if (model == "llama") {
    v.kind = BpeKind::SentencePiece;
    check(f.has("tokenizer.ggml.scores"), "{}: SentencePiece vocabulary without tokenizer.ggml.scores", f.path());
    v.scores = f.get_floats("tokenizer.ggml.scores");
    check(v.scores.size() == n, "{}: tokenizer.ggml.scores has {} entries for {} tokens", f.path(), v.scores.size(), n);
    // llama.cpp puts "▁" before the first text fragment only (add_space_prefix, default true).
    bool prefix = !f.has("tokenizer.ggml.add_space_prefix") || f.get_bool("tokenizer.ggml.add_space_prefix");
    v.prefix_space = prefix ? PrefixSpace::First : PrefixSpace::Never;
    v.split_on_space = false;
    v.byte_fallback = true;
  } else if (model == "gpt2") {
    v.kind = BpeKind::ByteLevel;
    v.prefix_space = PrefixSpace::Never;
    for (const std::string& m : f.get_strings("tokenizer.ggml.merges")) {
      size_t sp = m.find(' ', 1);
      check(sp != std::string::npos, "{}: tokenizer.ggml.merges entry '{}' is not two pieces", f.path(), m);
      v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
    set_pre_tokenizer(f, f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "", &v);
  } else {
    fail("{}: tokenizer.ggml.model '{}' is not supported (supported: llama, gpt2)", f.path(), model);
  }
  v.bos_id = optional_id(f, "tokenizer.ggml.bos_token_id", n);
  v.eos_id = optional_id(f, "tokenizer.ggml.eos_token_id", n);
  v.unk_id = optional_id(f, "tokenizer.ggml.unknown_token_id", n);
  return v;
}

// ---------------------------------------------------------------------------------------------------
// Model

namespace {

struct Loader {
  std::shared_ptr<const GgufFile> file;
  const std::string& path() const { return file->path(); }

  const GgufTensor& tensor(const std::string& name, std::vector<int64_t> ne) const {
    const GgufTensor* t = file->find_tensor(name);
    check(t != nullptr, "{}: missing tensor '{}'", path(), name);
    check(t->ne == ne, "{}: tensor '{}' has shape [{}] (ggml order), want [{}]", path(), name, fmt::join(t->ne, ", "),
          fmt::join(ne, ", "));
    return *t;
  }
  std::vector<float> vec(const std::string& name, int64_t n) const { return tensor(name, {n}).to_f32(); }

  // A (rows, cols) projection in its stored type; perm (q/k) re-lays rows, see gguf_model.h.
  Linear linear(const std::string& name, int64_t rows, int64_t cols, const std::vector<int64_t>* perm) const {
    const GgufTensor& t = tensor(name, {cols, rows});
    check(cols % t.traits().block_size == 0, "{}: tensor '{}' of type {} has rows of {} values, not whole blocks",
          path(), name, t.traits().name, cols);
    Linear lin;
    if (!perm) {
      lin.w = make_ggml_weight(t.type, rows, cols, t.data, file);
    } else {
      auto bytes = std::make_shared<std::vector<uint8_t>>(permute_rows(t.data, ggml_row_size(t.type, cols), *perm));
      lin.w = make_ggml_weight(t.type, rows, cols, bytes->data(), bytes);
    }
    return lin;
  }
};

}  // namespace

std::unique_ptr<Model> load_gguf_model(const std::string& path) {
  auto file = std::make_shared<const GgufFile>(path);
  const GgufFile& f = *file;
  const std::string arch = f.get_string("general.architecture");
  check(arch == "llama", "{}: GGUF architecture '{}' is not supported (lmpress imports 'llama')", path, arch);
  check(f.get_uint("llama.expert_count", 0) == 0, "{}: mixture-of-experts llama GGUF is not supported", path);
  check(f.find_tensor("rope_freqs.weight") == nullptr,
        "{}: rope_freqs (Llama-3.1 frequency factors) is not supported by the GGUF importer", path);

  auto m = std::make_unique<Model>();
  m->dir = path;
  ModelConfig& c = m->cfg;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden = int(f.get_uint("llama.embedding_length"));
  c.n_layers = int(f.get_uint("llama.block_count"));
  c.intermediate = int(f.get_uint("llama.feed_forward_length"));
  c.n_heads = int(f.get_uint("llama.attention.head_count"));
  c.n_kv_heads = int(f.get_uint("llama.attention.head_count_kv", uint64_t(c.n_heads)));
  check(c.hidden > 0 && c.n_layers > 0 && c.intermediate > 0 && c.n_heads > 0 && c.n_kv_heads > 0,
        "{}: llama.* sizes must be positive", path);
  check(c.n_heads % c.n_kv_heads == 0, "{}: head_count {} is not a multiple of head_count_kv {}", path, c.n_heads,
        c.n_kv_heads);
  c.head_dim = int(f.get_uint("llama.attention.key_length", 0));
  if (c.head_dim == 0) {
    check(c.hidden % c.n_heads == 0, "{}: embedding_length {} not divisible by head_count {}", path, c.hidden, c.n_heads);
    c.head_dim = c.hidden / c.n_heads;
  }
  check(c.head_dim % 2 == 0, "{}: head dimension {} must be even for RoPE", path, c.head_dim);
  check(int(f.get_uint("llama.attention.value_length", uint64_t(c.head_dim))) == c.head_dim,
        "{}: attention.value_length differs from key_length (not supported)", path);
  const uint64_t rope_dims = f.get_uint("llama.rope.dimension_count", uint64_t(c.head_dim));
  check(rope_dims == uint64_t(c.head_dim),
        "{}: llama.rope.dimension_count {} differs from the head dimension {} (partial RoPE is not supported)", path,
        rope_dims, c.head_dim);
  c.max_pos = int(f.get_uint("llama.context_length", 2048));
  c.rms_eps = float(f.get_float("llama.attention.layer_norm_rms_epsilon", 1e-5));
  c.rope_theta = float(f.get_float("llama.rope.freq_base", 10000.0));
  std::string scaling = f.has("llama.rope.scaling.type") ? f.get_string("llama.rope.scaling.type") : "none";
  if (scaling == "linear") {
    c.rope_scaling = RopeScaling::Linear;
    c.rope_factor = float(f.get_float("llama.rope.scaling.factor", 1.0));
  } else if (scaling != "none") {
    fail("{}: llama.rope.scaling.type '{}' is not supported (supported: none, linear)", path, scaling);
  } else if (f.has("llama.rope.scale_linear")) {  // older key
    c.rope_scaling = RopeScaling::Linear;
    c.rope_factor = float(f.get_float("llama.rope.scale_linear"));
  }

  // Tokenizer (also fixes BOS/EOS).
  BpeVocab vocab = gguf_vocab(f);
  c.bos_id = vocab.bos_id;
  c.eos_id = vocab.eos_id;
  m->set_tokenizer(make_bpe_tokenizer(vocab));

  Loader ld{file};
  const GgufTensor* emb = f.find_tensor("token_embd.weight");
  check(emb != nullptr, "{}: missing tensor 'token_embd.weight'", path);
  check(emb->ne.size() == 2 && emb->ne[0] == c.hidden && emb->ne[1] > 0,
        "{}: tensor 'token_embd.weight' has shape [{}] (ggml order), want [{}, n_vocab]", path, fmt::join(emb->ne, ", "),
        c.hidden);
  c.vocab = int(emb->ne[1]);
  check(c.vocab >= int(vocab.tokens.size()), "{}: token_embd has {} rows for {} tokens", path, c.vocab,
        vocab.tokens.size());
  const int64_t C = c.hidden, hs = c.head_dim, H = c.n_heads, KV = c.n_kv_heads, F = c.intermediate;
  m->embed = emb->to_f32();
  m->final_norm = ld.vec("output_norm.weight", C);
  const auto perm_q = rope_rows_hf_from_gguf(H, hs), perm_k = rope_rows_hf_from_gguf(KV, hs);
  for (int l = 0; l < c.n_layers; l++) {
    Block b;
    const std::string p = fmt::format("blk.{}.", l);
    b.attn_norm = ld.vec(p + "attn_norm.weight", C);
    b.ffn_norm = ld.vec(p + "ffn_norm.weight", C);
    b.at(LinearKind::Q) = ld.linear(p + "attn_q.weight", H * hs, C, &perm_q);
    b.at(LinearKind::K) = ld.linear(p + "attn_k.weight", KV * hs, C, &perm_k);
    b.at(LinearKind::V) = ld.linear(p + "attn_v.weight", KV * hs, C, nullptr);
    b.at(LinearKind::O) = ld.linear(p + "attn_output.weight", C, H * hs, nullptr);
    b.at(LinearKind::Gate) = ld.linear(p + "ffn_gate.weight", F, C, nullptr);
    b.at(LinearKind::Up) = ld.linear(p + "ffn_up.weight", F, C, nullptr);
    b.at(LinearKind::Down) = ld.linear(p + "ffn_down.weight", C, F, nullptr);
    // Optional q/k/v biases (llama.cpp's llama graph adds them when present); q/k in RoPE row order too.
    const char* bias_names[3] = {"attn_q.bias", "attn_k.bias", "attn_v.bias"};
    const std::vector<int64_t>* bias_perm[3] = {&perm_q, &perm_k, nullptr};
    for (int k = 0; k < 3; k++) {
      if (!f.find_tensor(p + bias_names[k])) continue;
      Linear& lin = b.lin[size_t(k)];
      std::vector<float> v = ld.vec(p + bias_names[k], lin.out());
      if (bias_perm[k]) {
        auto bytes = permute_rows(reinterpret_cast<const uint8_t*>(v.data()), 4, *bias_perm[k]);
        std::memcpy(v.data(), bytes.data(), bytes.size());
      }
      lin.bias = std::move(v);
      c.qkv_bias = true;
    }
    m->blocks.push_back(std::move(b));
  }
  if (f.find_tensor("output.weight")) {
    c.tie_embeddings = false;
    m->lm_head = ld.linear("output.weight", c.vocab, C, nullptr);
  } else {
    c.tie_embeddings = true;
    m->retie_head();
    // A quantized tied table stays stored as llama.cpp holds it: the head runs on its blocks, lookups read embed.
    if (emb->type != GgmlType::F32) m->set_embed_table(make_ggml_weight(emb->type, c.vocab, C, emb->data, file));
  }
  return m;
}

}  // namespace lmp

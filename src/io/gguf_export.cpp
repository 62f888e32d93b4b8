#include "io/gguf_export.h"

#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <optional>
#include <strings.h>
#include <unordered_map>

#include "core/error.h"
#include "core/half.h"
#include "io/gguf.h"
#include "kernels/dense.h"
#include "kernels/ggml_blocks_matrix.h"
#include "kernels/qint.h"
#include "model/gguf_model.h"

namespace lmp {
namespace {

// The types --type accepts besides auto: those lmpress can write from f32.
bool writable(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || ggml_traits(t).from_float != nullptr;
}

// llama.cpp's choice when the row width is not a multiple of the block (llama_tensor_get_type), then F16.
GgmlType fit_type(GgmlType t, int64_t cols) {
  if (cols % ggml_traits(t).block_size == 0) return t;
  switch (t) {
    case GgmlType::Q4_K: t = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: t = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: t = GgmlType::Q8_0; break;
    default: t = GgmlType::F16; break;
  }
  return cols % ggml_traits(t).block_size == 0 ? t : GgmlType::F16;
}

// llama_ftype of the dominant type.
uint32_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q5_0: return 8;
    case GgmlType::Q5_1: return 9;
    case GgmlType::Q2_K: return 10;
    case GgmlType::Q3_K: return 12;  // Q3_K_M
    case GgmlType::Q4_K: return 15;  // Q4_K_M
    case GgmlType::Q5_K: return 17;  // Q5_K_M
    case GgmlType::Q6_K: return 18;
    case GgmlType::IQ4_NL: return 25;
    case GgmlType::IQ4_XS: return 30;
    case GgmlType::BF16: return 32;
  }
  return 0;
}

// Rows of f32 values -> rows of type t.
std::vector<uint8_t> encode_rows(GgmlType t, const float* W, int64_t rows, int64_t cols) {
  const size_t rb = ggml_row_size(t, cols);
  std::vector<uint8_t> out(size_t(rows) * rb);
  for (int64_t r = 0; r < rows; r++) {
    const float* x = W + r * cols;
    uint8_t* y = out.data() + size_t(r) * rb;
    if (t == GgmlType::F32) {
      std::memcpy(y, x, rb);
    } else if (t == GgmlType::F16) {
      for (int64_t c = 0; c < cols; c++) {
        f16_t h = f32_to_f16(x[c]);
        std::memcpy(y + 2 * c, &h, 2);
      }
    } else {
      ggml_traits(t).from_float(x, y, cols);
    }
  }
  return out;
}

// The Q8_0 / Q4_0 blocks holding exactly the codes and scales of a symmetric group-32 QIntMatrix.
std::vector<uint8_t> blocks_from_codes(const QIntMatrix& q, GgmlType t) {
  const int64_t rows = q.rows(), cols = q.cols(), nb = cols / kQK;
  const size_t rb = ggml_row_size(t, cols);
  std::vector<uint8_t> out(size_t(rows) * rb);
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r++) {
    q.unpack_row(r, codes.data());
    for (int64_t b = 0; b < nb; b++) {
      const f16_t d = f32_to_f16(q.params(r, b).scale);  // an f16 value already: exact
      const uint8_t* c = codes.data() + b * kQK;
      uint8_t* dst = out.data() + size_t(r) * rb;
      if (t == GgmlType::Q8_0) {
        BlockQ8_0 blk;
        blk.d = d;
        for (int j = 0; j < kQK; j++) blk.qs[j] = int8_t(int(c[j]) - 128);
        std::memcpy(dst + size_t(b) * sizeof blk, &blk, sizeof blk);
      } else {
        BlockQ4_0 blk;
        blk.d = d;
        for (int j = 0; j < kQK / 2; j++) blk.qs[j] = uint8_t(c[j] | (c[j + kQK / 2] << 4));
        std::memcpy(dst + size_t(b) * sizeof blk, &blk, sizeof blk);
      }
    }
  }
  return out;
}

class Exporter {
 public:
  Exporter(const GgufExportOptions& opt) : opt_(opt) {
    if (opt.type != "auto") {
      const GgmlTypeTraits* t = nullptr;
      for (const auto& tr : ggml_types())
        if (strcasecmp(tr.name, opt.type.c_str()) == 0) t = &tr;
      check(t != nullptr && writable(t->type),
            "--type '{}' is not supported (auto, f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k)", opt.type);
      target_ = t->type;
      fixed_ = true;
    }
  }

  // Adds one (rows, cols) matrix; perm (gguf row -> source row) for q/k.
  void matrix(const std::string& name, const WeightMatrix& w, const std::vector<int64_t>* perm) {
    const int64_t rows = w.rows(), cols = w.cols();
    GgmlType want;
    std::string how;
    const auto* blocks = dynamic_cast<const GgmlBlockMatrix*>(&w);
    const auto* qi = dynamic_cast<const QIntMatrix*>(&w);
    const std::string fmt = w.format();
    if (fixed_) {
      want = target_;
    } else if (fmt == "f32" || fmt == "f16") {
      want = fmt == "f32" ? GgmlType::F32 : GgmlType::F16;
    } else if (blocks) {
      want = blocks->type();
    } else if (qi) {
      const QuantGrid& g = qi->grid();
      if (g.sym && g.group == 32 && (g.bits == 8 || g.bits == 4))
        want = g.bits == 8 ? GgmlType::Q8_0 : GgmlType::Q4_0;
      else if (g.bits == 8)
        want = GgmlType::Q8_0;
      else if (g.bits == 4 && !g.sym && g.group == 32)
        want = GgmlType::Q4_1;
      else
        want = GgmlType::Q4_K;
    } else {
      want = GgmlType::F32;
      how = fmt::format("dequantized ({} has no GGUF type)", fmt);
    }
    const GgmlType t = fit_type(want, cols);
    std::vector<uint8_t> data;
    const uint8_t* src = nullptr;  // borrowed instead of data when set
    if (t != want) {
      how = fmt::format("fallback from {} (row width {} is not a multiple of {}), re-quantized", ggml_traits(want).name,
                        cols, ggml_traits(want).block_size);
    } else if (blocks && blocks->type() == t) {
      src = blocks->data();
      how = "blocks copied";
    } else if (fmt == "f32" && t == GgmlType::F32) {
      src = reinterpret_cast<const uint8_t*>(static_cast<const DenseF32&>(w).data());
      how = "copied";
    } else if (qi && qi->grid().sym && qi->grid().group == 32 &&
               ((t == GgmlType::Q8_0 && qi->grid().bits == 8) || (t == GgmlType::Q4_0 && qi->grid().bits == 4))) {
      data = blocks_from_codes(*qi, t);
      how = "codes kept (exact)";
    } else if (fmt == "f16" && t == GgmlType::F16) {
      how = "copied";  // f16 -> f32 -> f16 is exact
    } else if (how.empty()) {
      how = fmt == "f32" ? "quantized" : "re-quantized from dequantized values";
    }
    if (!src && data.empty()) data = encode_rows(t, w.dense().data(), rows, cols);
    if (perm) {
      data = permute_rows(src ? src : data.data(), ggml_row_size(t, cols), *perm);
      src = nullptr;
    }
    add(name, t, {cols, rows}, std::move(data), src, fmt::format("{} ({}): {}", name, fmt, how));
  }

  void vector_f32(const std::string& name, const std::vector<float>& v, const std::vector<int64_t>* perm = nullptr) {
    if (perm) {
      std::vector<uint8_t> d = permute_rows(reinterpret_cast<const uint8_t*>(v.data()), 4, *perm);
      add(name, GgmlType::F32, {int64_t(v.size())}, std::move(d), nullptr, "");
    } else {
      add(name, GgmlType::F32, {int64_t(v.size())}, {}, reinterpret_cast<const uint8_t*>(v.data()), "");
    }
  }

  void embedding(const std::vector<float>& e, int64_t vocab, int64_t C) {
    const GgmlType t = fixed_ ? fit_type(target_, C) : GgmlType::F32;
    if (t == GgmlType::F32)
      add("token_embd.weight", t, {C, vocab}, {}, reinterpret_cast<const uint8_t*>(e.data()), "token_embd.weight: f32");
    else
      add("token_embd.weight", t, {C, vocab}, encode_rows(t, e.data(), vocab, C), nullptr,
          fmt::format("token_embd.weight: {}", ggml_traits(t).name));
  }

  GgufWriter& writer() { return w_; }
  std::vector<GgufExportTensor>& tensors() { return tensors_; }
  // The most common projection type (by weights), for general.file_type.
  GgmlType dominant() const {
    GgmlType best = GgmlType::F32;
    int64_t most = -1;
    for (const auto& [t, n] : weights_)
      if (n > most) best = GgmlType(t), most = n;
    return best;
  }

 private:
  void add(const std::string& name, GgmlType t, std::vector<int64_t> ne, std::vector<uint8_t> data, const uint8_t* src,
           const std::string& line) {
    int64_t n = 1;
    for (int64_t x : ne) n *= x;
    const size_t nbytes = ggml_row_size(t, ne[0]) * size_t(n / ne[0]);
    if (!src) {
      keep_.push_back(std::move(data));
      src = keep_.back().data();
    }
    w_.add_tensor_view(name, t, std::move(ne), src, nbytes);
    if (!line.empty()) {
      if (opt_.log)
        opt_.log(line);
      else
        std::fprintf(stderr, "export gguf: %s -> %s\n", line.c_str(), ggml_traits(t).name);
      const auto pos = line.find(": ");
      tensors_.push_back({name, t, pos == std::string::npos ? line : line.substr(pos + 2)});
      if (name.rfind("blk.", 0) == 0) weights_[uint32_t(t)] += n;
    }
  }

  const GgufExportOptions& opt_;
  bool fixed_ = false;
  GgmlType target_ = GgmlType::F32;
  GgufWriter w_;
  std::deque<std::vector<uint8_t>> keep_;
  std::vector<GgufExportTensor> tensors_;
  std::map<uint32_t, int64_t> weights_;
};

size_t chars(const std::string& s) {  // UTF-8 characters
  size_t n = 0;
  for (unsigned char ch : s) n += (ch & 0xC0) != 0x80;
  return n;
}

// tokenizer.ggml.* from the model's tokenizer (see gguf_model.cpp's gguf_vocab for the reverse).
void write_tokenizer(const Tokenizer& tok, const std::string& path, GgufWriter& w) {
  std::optional<BpeVocab> ov = tok.vocab();
  check(ov.has_value(), "{}: the model's tokenizer ({}) has no vocabulary data to write into a GGUF", path, tok.kind());
  const BpeVocab& v = *ov;
  const size_t n = v.tokens.size();
  std::vector<int32_t> types(n, int32_t(TokenType::Normal));
  if (!v.types.empty()) {
    for (size_t i = 0; i < n; i++) types[i] = int32_t(v.types[i]);
  } else {
    for (size_t i = 0; i < n; i++) {
      const std::string& p = v.tokens[i];
      if (v.kind == BpeKind::SentencePiece && p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>')
        types[i] = int32_t(TokenType::Byte);
    }
    for (const AddedToken& a : v.added)
      types[size_t(a.id)] = int32_t(a.special ? TokenType::Control : TokenType::UserDefined);
    if (v.unk_id >= 0) types[size_t(v.unk_id)] = int32_t(TokenType::Unknown);
  }
  if (v.kind == BpeKind::SentencePiece) {
    w.set_string("tokenizer.ggml.model", "llama");
    std::vector<float> scores = v.scores;
    if (scores.empty()) {
      // Merge rank r -> score −r for the merged piece (SentencePiece's "highest score first" is then the
      // merge order); pieces no merge produces score below every merge.
      scores.assign(n, 0.f);
      std::vector<bool> has(n, false);
      std::unordered_map<std::string, size_t> id;
      for (size_t i = 0; i < n; i++) id.emplace(v.tokens[i], i);
      for (size_t r = 0; r < v.merges.size(); r++) {
        auto it = id.find(v.merges[r].first + v.merges[r].second);
        if (it != id.end() && !has[it->second]) scores[it->second] = -float(r), has[it->second] = true;
      }
      for (size_t i = 0; i < n; i++)
        if (!has[i] && types[i] == int32_t(TokenType::Normal) && chars(v.tokens[i]) > 1)
          scores[i] = -float(v.merges.size() + 1);
    }
    w.set("tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
    w.set("tokenizer.ggml.scores", GgufValue::array(GgufType::F32, scores));
    w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, types));
    if (v.prefix_space == PrefixSpace::Never) w.set("tokenizer.ggml.add_space_prefix", GgufValue::of(GgufType::BOOL, uint8_t(0)));
  } else {
    w.set_string("tokenizer.ggml.model", "gpt2");
    std::string pre;
    if (v.splits.empty())
      pre = "default";
    else if (v.splits.size() == 1 && v.splits[0].pattern == kGpt2Pattern)
      pre = "gpt-2";
    else if (v.splits.size() == 1 && v.splits[0].pattern == kLlama3Pattern)
      pre = "llama-bpe";
    else
      fail("{}: the byte-level pre-tokenizer has no llama.cpp tokenizer.ggml.pre name", path);
    w.set_string("tokenizer.ggml.pre", pre);
    std::vector<std::string> merges;
    merges.reserve(v.merges.size());
    for (const auto& [a, b] : v.merges) merges.push_back(a + " " + b);
    w.set("tokenizer.ggml.tokens", GgufValue::strings(v.tokens));
    w.set("tokenizer.ggml.token_type", GgufValue::array(GgufType::I32, types));
    w.set("tokenizer.ggml.merges", GgufValue::strings(std::move(merges)));
  }
  if (tok.bos_id() >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(tok.bos_id()));
  if (tok.eos_id() >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(tok.eos_id()));
  if (v.unk_id >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk_id));
  w.set("tokenizer.ggml.add_bos_token", GgufValue::of(GgufType::BOOL, uint8_t(tok.bos_id() >= 0)));
}

}  // namespace

GgufExportResult export_gguf(const Model& m, const std::string& path, const GgufExportOptions& opt) {
  const ModelConfig& c = m.cfg;
  check(c.layer_heads.empty(), "{}: models with per-layer widths (structured pruning) cannot be exported to GGUF", path);
  check(c.rope_scaling != RopeScaling::Llama3, "{}: Llama-3 RoPE scaling is not supported by the GGUF exporter", path);
  Exporter ex(opt);
  GgufWriter& w = ex.writer();
  w.set_string("general.architecture", "llama");
  std::string name = std::filesystem::path(m.dir).stem().string();  // directory name, or GGUF file stem
  w.set_string("general.name", name.empty() ? "lmpress" : name);
  w.set_u32("general.file_type", 0);  // fixed below; set now to keep the key order of llama.cpp files
  w.set_u32("llama.vocab_size", uint32_t(c.vocab));
  w.set_u32("llama.context_length", uint32_t(c.max_pos));
  w.set_u32("llama.embedding_length", uint32_t(c.hidden));
  w.set_u32("llama.block_count", uint32_t(c.n_layers));
  w.set_u32("llama.feed_forward_length", uint32_t(c.intermediate));
  w.set_u32("llama.rope.dimension_count", uint32_t(c.head_dim));
  w.set_u32("llama.attention.head_count", uint32_t(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", uint32_t(c.n_kv_heads));
  if (c.head_dim * c.n_heads != c.hidden) {
    w.set_u32("llama.attention.key_length", uint32_t(c.head_dim));
    w.set_u32("llama.attention.value_length", uint32_t(c.head_dim));
  }
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.rms_eps);
  w.set_f32("llama.rope.freq_base", c.rope_theta);
  if (c.rope_scaling == RopeScaling::Linear) {
    w.set_string("llama.rope.scaling.type", "linear");
    w.set_f32("llama.rope.scaling.factor", c.rope_factor);
  }
  write_tokenizer(m.tokenizer(), path, w);

  // Inverse of the import permutation: gguf row g holds hf row inv[g].
  auto inverse = [](const std::vector<int64_t>& p) {
    std::vector<int64_t> inv(p.size());
    for (size_t i = 0; i < p.size(); i++) inv[size_t(p[i])] = int64_t(i);
    return inv;
  };
  const auto perm_q = inverse(rope_rows_hf_from_gguf(c.n_heads, c.head_dim));
  const auto perm_k = inverse(rope_rows_hf_from_gguf(c.n_kv_heads, c.head_dim));
  if (m.tied_head_stored())  // the one stored copy of a tied table: mapped like a projection (e.g. int8 g32 -> Q8_0)
    ex.matrix("token_embd.weight", *m.embed_w, nullptr);
  else {
    m.require_dense_embed("export --format gguf");
    ex.embedding(m.embed, c.vocab, c.hidden);
  }
  ex.vector_f32("output_norm.weight", m.final_norm);
  if (!c.tie_embeddings) ex.matrix("output.weight", *m.lm_head.w, nullptr);
  static const char* const kNames[kLinearsPerBlock] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                       "ffn_gate", "ffn_up", "ffn_down"};
  for (int l = 0; l < c.n_layers; l++) {
    const Block& b = m.blocks[size_t(l)];
    const std::string p = fmt::format("blk.{}.", l);
    ex.vector_f32(p + "attn_norm.weight", b.attn_norm);
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const Linear& lin = b.lin[size_t(k)];
      const std::vector<int64_t>* perm = k == 0 ? &perm_q : k == 1 ? &perm_k : nullptr;
      ex.matrix(p + kNames[k] + ".weight", *lin.w, perm);
      if (!lin.bias.empty()) ex.vector_f32(p + kNames[k] + ".bias", lin.bias, perm);
    }
    ex.vector_f32(p + "ffn_norm.weight", b.ffn_norm);
  }
  GgufExportResult res;
  res.file_type = file_type_of(ex.dominant());
  w.set_u32("general.file_type", res.file_type);
  bool quantized = false;
  for (const auto& t : ex.tensors()) quantized |= ggml_traits(t.type).block_size > 1;
  if (quantized) w.set_u32("general.quantization_version", 2);
  w.write(path);
  res.tensors = std::move(ex.tensors());
  res.bytes = std::filesystem::file_size(path);
  return res;
}

}  // namespace lmp

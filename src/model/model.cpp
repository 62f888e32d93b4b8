#include "model/model.h"

#include <filesystem>
#include <fmt/ranges.h>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "kernels/weight_registry.h"
#include "model/gguf_model.h"

namespace lmp {

namespace fs = std::filesystem;

std::string linear_name(int layer, LinearKind kind) {
  return fmt::format("model.layers.{}.{}", layer, kLinearNames[size_t(kind)]);
}

const Tokenizer& Model::tokenizer() const {
  if (!tok_) tok_ = Tokenizer::from_dir(dir);
  return *tok_;
}

int64_t Model::n_params() const {
  int64_t n = (embed_w ? embed_w->n_params() : int64_t(embed.size())) + int64_t(final_norm.size());
  if (!cfg.tie_embeddings) n += lm_head.w->n_params();
  for (const auto& b : blocks) {
    n += int64_t(b.attn_norm.size() + b.ffn_norm.size() + b.kv_smooth.size());
    for (const auto& l : b.lin) n += l.w->n_params() + int64_t(l.bias.size());
    for (const Linear* s : {&b.attn_shortcut, &b.mlp_shortcut})
      if (s->w) n += s->w->n_params();
  }
  return n;
}

size_t Model::n_bytes() const {
  size_t n = (embed_w ? embed_w->nbytes() : embed.size() * 4) + final_norm.size() * 4;
  if (!cfg.tie_embeddings) n += lm_head.w->nbytes();
  for (const auto& b : blocks) {
    n += (b.attn_norm.size() + b.ffn_norm.size() + b.kv_smooth.size()) * 4;
    for (const auto& l : b.lin) n += l.w->nbytes() + l.bias.size() * 4;
    for (const Linear* s : {&b.attn_shortcut, &b.mlp_shortcut})
      if (s->w) n += s->w->nbytes();
  }
  return n;
}

double Model::linear_bits_per_weight() const {
  double bits = 0, weights = 0;
  for (const auto& b : blocks)
    for (const auto& l : b.lin) {
      bits += 8.0 * double(l.w->nbytes());
      weights += double(l.out() * l.in());
    }
  return weights > 0 ? bits / weights : 0;
}

namespace {

// The tied LM head over a compressed embedding: the same stored matrix, borrowed (the model owns it).
class BorrowedWeight final : public WeightMatrix {
 public:
  explicit BorrowedWeight(const WeightMatrix& w) : WeightMatrix(w.rows(), w.cols()), w_(w) {}
  std::string format() const override { return w_.format(); }
  size_t nbytes() const override { return w_.nbytes(); }
  int64_t n_params() const override { return w_.n_params(); }
  void matmul(const float* X, int64_t n, float* Y) const override { w_.matmul(X, n, Y); }
  void dequantize(float* W) const override { w_.dequantize(W); }
  void dequantize_row(int64_t r, float* out) const override { w_.dequantize_row(r, out); }
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override { return w_.save(w, prefix); }

 private:
  const WeightMatrix& w_;
};

}  // namespace

void Model::set_embed_table(WeightPtr w) {
  embed_w = std::move(w);
  if (embed_w->row_lookup())
    std::vector<float>().swap(embed);
  else
    embed = embed_w->dense();
  retie_head();
}

void Model::set_head(WeightPtr w) {
  if (cfg.tie_embeddings)
    set_embed_table(std::move(w));
  else
    lm_head.w = std::move(w);
}

void Model::retie_head() {
  if (!cfg.tie_embeddings) return;
  if (embed_w)
    lm_head.w = std::make_unique<BorrowedWeight>(*embed_w);
  else
    lm_head.w = std::make_unique<DenseF32>(cfg.vocab, cfg.hidden, embed.data(), nullptr);
}

void Model::embed_row(int id, float* out) const {
  if (!embed.empty())
    std::copy_n(embed.data() + size_t(id) * size_t(cfg.hidden), cfg.hidden, out);
  else
    embed_w->dequantize_row(id, out);
}

void Model::require_dense_embed(const std::string& what) const {
  check(!embed_w, "{}: the embedding table is stored as {}; {} needs a dense f32 table", dir,
        embed_w ? embed_w->format() : "", what);
}

// ---------------------------------------------------------------------------------------------------
// Loading

static std::vector<float> load_vector(const Checkpoint& ck, const std::string& name, int64_t n) {
  const TensorView& t = ck.get(name);
  check(t.numel() == n, "{}: tensor {} has {} values, want {}", ck.where(), name, t.numel(), n);
  return t.to_f32();
}

static nlohmann::json read_json(const std::string& path) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
}

// Loads Linear `prefix` with the stored format named in quantization_config (dense when absent).
static Linear load_linear(const Checkpoint& ck, const std::string& prefix, const nlohmann::json& qlayers,
                          int64_t out, int64_t in, bool bias) {
  Linear lin;
  if (qlayers.contains(prefix))
    lin.w = load_weight(ck, prefix, qlayers[prefix]);
  else
    lin.w = load_dense_weight(ck, prefix);
  check(lin.w->rows() == out && lin.w->cols() == in, "{}: {} has shape [{}, {}], config wants [{}, {}]", ck.where(),
        prefix, lin.w->rows(), lin.w->cols(), out, in);
  // Biases: required for q/k/v when the architecture has them; any other projection may carry one
  // (FLAP's bias compensation on o_proj/down_proj).
  if (bias || ck.has(prefix + ".bias")) lin.bias = load_vector(ck, prefix + ".bias", out);
  return lin;
}

std::unique_ptr<Model> load_model(const std::string& dir) {
  if (!fs::is_directory(dir) && is_gguf_file(dir)) return load_gguf_model(dir);  // llama.cpp's single file
  check(fs::is_directory(dir), "{}: not a directory (want a Hugging Face model directory)", dir);
  auto m = std::make_unique<Model>();
  m->dir = dir;
  std::string cfg_path = dir + "/config.json";
  check(file_exists(cfg_path), "{}: missing config.json", dir);
  nlohmann::json cj = read_json(cfg_path);
  m->cfg = ModelConfig::from_json(cj, cfg_path);
  nlohmann::json qlayers = nlohmann::json::object();
  if (cj.contains("quantization_config") && cj["quantization_config"].is_object()) {
    const auto& q = cj["quantization_config"];
    check(q.value("quant_method", "") == "lmpress", "{}: quantization_config.quant_method '{}' is not supported "
          "(lmpress loads its own outputs; export GPTQ files with `lmpress export`)", cfg_path, q.value("quant_method", ""));
    if (q.contains("layers")) qlayers = q["layers"];
    if (q.contains("recipe")) m->recipe = q["recipe"];
  }
  Checkpoint ck(dir);
  const ModelConfig& c = m->cfg;
  const int64_t C = c.hidden, hs = c.head_dim;
  if (qlayers.contains("model.embed_tokens")) {  // a stored table (quantized tied head, TensorGPT)
    WeightPtr t = load_weight(ck, "model.embed_tokens", qlayers["model.embed_tokens"]);
    check(t->rows() == c.vocab && t->cols() == C, "{}: model.embed_tokens has shape [{}, {}], config wants [{}, {}]",
          ck.where(), t->rows(), t->cols(), c.vocab, C);
    m->set_embed_table(std::move(t));
  } else {
    m->embed = load_vector(ck, "model.embed_tokens.weight", int64_t(c.vocab) * C);
  }
  m->final_norm = load_vector(ck, "model.norm.weight", C);
  for (int l = 0; l < c.n_layers; l++) {
    Block b;
    std::string p = fmt::format("model.layers.{}.", l);
    b.attn_norm = load_vector(ck, p + "input_layernorm.weight", C);
    b.ffn_norm = load_vector(ck, p + "post_attention_layernorm.weight", C);
    const int64_t H = c.heads(l), KV = c.kv_heads(l), F = c.ffn(l);
    const int64_t shapes[kLinearsPerBlock][2] = {{H * hs, C}, {KV * hs, C}, {KV * hs, C}, {C, H * hs},
                                                 {F, C},      {F, C},       {C, F}};
    for (int k = 0; k < kLinearsPerBlock; k++) {
      bool bias = c.qkv_bias && k <= int(LinearKind::V);
      b.lin[size_t(k)] = load_linear(ck, linear_name(l, LinearKind(k)), qlayers, shapes[k][0], shapes[k][1], bias);
    }
    if (ck.has(p + "self_attn.kv_smooth")) b.kv_smooth = load_vector(ck, p + "self_attn.kv_smooth", 4 * KV * hs);
    if (c.residual_shortcuts) {
      b.attn_shortcut = load_linear(ck, p + "attn_shortcut", qlayers, C, C, false);
      b.mlp_shortcut = load_linear(ck, p + "mlp_shortcut", qlayers, C, C, false);
    }
    m->blocks.push_back(std::move(b));
  }
  if (c.tie_embeddings || !(ck.has("lm_head.weight") || qlayers.contains("lm_head"))) {
    m->cfg.tie_embeddings = true;
    m->retie_head();
  } else {
    m->lm_head = load_linear(ck, "lm_head", qlayers, c.vocab, C, false);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------------
// Saving

static void copy_tokenizer_files(const std::string& from, const std::string& to) {
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json"}) {
    fs::path src = fs::path(from) / f;
    if (fs::exists(src)) fs::copy_file(src, fs::path(to) / f, fs::copy_options::overwrite_existing);
  }
}

void save_model(const Model& m, const std::string& out_dir) {
  const ModelConfig& c = m.cfg;
  fs::path out = fs::absolute(out_dir);
  fs::path tmp = out.string() + ".tmp-lmpress";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  check(fs::create_directories(tmp, ec), "{}: cannot create directory ({})", tmp.string(), ec.message());
  try {
    SafeTensorsWriter w;
    nlohmann::json layers = nlohmann::json::object();
    if (m.embed_w)
      layers["model.embed_tokens"] = m.embed_w->save(w, "model.embed_tokens");
    else
      w.add_f32("model.embed_tokens.weight", {c.vocab, c.hidden}, m.embed.data());
    w.add_f32("model.norm.weight", {c.hidden}, m.final_norm.data());
    for (int l = 0; l < c.n_layers; l++) {
      const Block& b = m.blocks[size_t(l)];
      std::string p = fmt::format("model.layers.{}.", l);
      w.add_f32(p + "input_layernorm.weight", {c.hidden}, b.attn_norm.data());
      w.add_f32(p + "post_attention_layernorm.weight", {c.hidden}, b.ffn_norm.data());
      for (int k = 0; k < kLinearsPerBlock; k++) {
        const Linear& lin = b.lin[size_t(k)];
        std::string name = linear_name(l, LinearKind(k));
        nlohmann::json spec = lin.w->save(w, name);
        if (spec.value("format", "f32") != "f32") layers[name] = spec;
        if (!lin.bias.empty()) w.add_f32(name + ".bias", {lin.out()}, lin.bias.data());
      }
      if (!b.kv_smooth.empty())
        w.add_f32(p + "self_attn.kv_smooth", {4, int64_t(b.kv_smooth.size() / 4)}, b.kv_smooth.data());
      check(c.residual_shortcuts == bool(b.attn_shortcut.w) && c.residual_shortcuts == bool(b.mlp_shortcut.w),
            "save {}: block {} residual shortcuts do not match config.residual_shortcuts", out_dir, l);
      for (const auto& [sc, tag] : {std::pair{&b.attn_shortcut, "attn_shortcut"}, std::pair{&b.mlp_shortcut, "mlp_shortcut"}})
        if (sc->w) {
          nlohmann::json spec = sc->w->save(w, p + tag);
          if (spec.value("format", "f32") != "f32") layers[p + tag] = spec;
        }
    }
    if (!c.tie_embeddings) {
      nlohmann::json spec = m.lm_head.w->save(w, "lm_head");
      if (spec.value("format", "f32") != "f32") layers["lm_head"] = spec;
    }
    nlohmann::json cj = c.to_json();
    if (!layers.empty() || !m.recipe.is_null())
      cj["quantization_config"] = {{"quant_method", "lmpress"}, {"layers", layers}, {"recipe", m.recipe}};
    w.set_metadata("format", "pt");
    w.write((tmp / "model.safetensors").string());
    std::string cfg_text = cj.dump(2) + "\n";
    write_file_atomic((tmp / "config.json").string(), cfg_text.data(), cfg_text.size());
    copy_tokenizer_files(m.dir, tmp.string());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  // Replace the destination only once everything is written.
  fs::path old = out.string() + ".old-lmpress";
  fs::remove_all(old, ec);
  if (fs::exists(out)) fs::rename(out, old);
  fs::rename(tmp, out);
  fs::remove_all(old, ec);
}

}  // namespace lmp

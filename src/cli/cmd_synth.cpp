// lmpress synth --shape tinyllama-1.1b|llama2-7b|llama3-8b|small --seed S [--dtype f32|f16] -o OUT
// Writes a random-weight model of a real architecture's shapes (deterministic from the seed: a rerun writes the
// same bytes). Speed does not depend on the values, so these are legitimate for timing kernels and engines.
// Weights ~ U(−a, a) with a = √3 · 0.02 (std 0.02, the Llama initializer range); norms = 1.
// A synthetic SentencePiece-style tokenizer.json of the shape's vocabulary size goes with it (<unk>, <s>, </s>,
// the 256 byte pieces, then filler pieces; no merges, so text tokenizes to bytes), so the model is complete:
// it exports to GGUF (`lmpress export --format gguf`) and llama.cpp loads that file.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "core/half.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace lmp {

namespace {

struct SynthShape {
  const char* name;
  int hidden, layers, heads, kv_heads, ffn, vocab, max_pos;
};

constexpr SynthShape kShapes[] = {
    {"small", 512, 4, 8, 4, 1536, 4096, 1024},
    {"tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048},
    {"llama2-7b", 4096, 32, 32, 32, 11008, 32000, 4096},
    {"llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192},
};

// splitmix64 → uniform floats in (−a, a); one stream per tensor so tensors are independent of write order.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform(float a) { return (float(next() >> 40) / float(1 << 24) * 2.f - 1.f) * a; }
};

// tokenizer.json (Hugging Face layout, read by io/tokenizer_json.cpp) with `vocab` pieces.
nlohmann::json synthetic_tokenizer(int vocab) {
  nlohmann::json v = nlohmann::json::object(), added = nlohmann::json::array();
  const char* special[3] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 3; i++) {
    v[special[i]] = i;
    added.push_back({{"id", i}, {"content", special[i]}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  }
  for (int b = 0; b < 256 && 3 + b < vocab; b++) v[fmt::format("<0x{:02X}>", b)] = 3 + b;
  for (int i = 259; i < vocab; i++) v[fmt::format("\u2581s{}", i)] = i;
  const std::string meta = "\u2581";
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", {{"type", "Sequence"},
                          {"normalizers", {{{"type", "Prepend"}, {"prepend", meta}},
                                           {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", meta}}}}}},
          {"pre_tokenizer", nullptr},
          {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true},
                     {"vocab", v}, {"merges", nlohmann::json::array()}}}};
}

}  // namespace

int cmd_synth(int argc, char** argv) {
  Args a(argc, argv, 2, {});
  std::string shape = a.required("shape"), out = a.required("output"), dtype = a.str("dtype", "f32");
  uint64_t seed = uint64_t(a.integer("seed", 1));
  long layers_override = a.integer("layers", 0);
  a.finish();
  const SynthShape* sh = nullptr;
  for (const auto& s : kShapes)
    if (shape == s.name) sh = &s;
  check(sh != nullptr, "--shape '{}': want small, tinyllama-1.1b, llama2-7b or llama3-8b", shape);
  check(dtype == "f32" || dtype == "f16", "--dtype '{}': want f32 or f16", dtype);
  const int L = layers_override > 0 ? int(layers_override) : sh->layers, C = sh->hidden, hs = C / sh->heads;
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", C},
                        {"num_hidden_layers", L}, {"num_attention_heads", sh->heads},
                        {"num_key_value_heads", sh->kv_heads}, {"head_dim", hs}, {"intermediate_size", sh->ffn},
                        {"vocab_size", sh->vocab}, {"max_position_embeddings", sh->max_pos},
                        {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", false},
                        {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", dtype == "f16" ? "float16" : "float32"},
                        {"lmpress_synthetic", {{"shape", sh->name}, {"seed", seed}}}};
  std::filesystem::create_directories(out);
  SafeTensorsWriter w;
  uint64_t stream = 0;
  const float amp = 0.02f * 1.7320508f;
  auto tensor = [&](const std::string& name, int64_t rows, int64_t cols, bool norm) {
    Rng rng{seed * 0x100000001b3ull + (++stream) * 0x9e3779b97f4a7c15ull};
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (auto& x : v) x = norm ? 1.0f : rng.uniform(amp);
    std::vector<int64_t> shp = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{rows, cols};
    if (dtype == "f32" || norm) return w.add_f32(name, shp, v.data());
    std::vector<f16_t> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = f32_to_f16(v[i]);
    w.add(name, DType::F16, shp, h.data(), h.size() * 2);
  };
  std::fprintf(stderr, "synth: %s, %d layers, %s ...\n", sh->name, L, dtype.c_str());
  tensor("model.embed_tokens.weight", sh->vocab, C, false);
  tensor("model.norm.weight", 1, C, true);
  tensor("lm_head.weight", sh->vocab, C, false);
  for (int l = 0; l < L; l++) {
    std::string p = fmt::format("model.layers.{}.", l);
    tensor(p + "input_layernorm.weight", 1, C, true);
    tensor(p + "post_attention_layernorm.weight", 1, C, true);
    tensor(p + "self_attn.q_proj.weight", int64_t(sh->heads) * hs, C, false);
    tensor(p + "self_attn.k_proj.weight", int64_t(sh->kv_heads) * hs, C, false);
    tensor(p + "self_attn.v_proj.weight", int64_t(sh->kv_heads) * hs, C, false);
    tensor(p + "self_attn.o_proj.weight", C, int64_t(sh->heads) * hs, false);
    tensor(p + "mlp.gate_proj.weight", sh->ffn, C, false);
    tensor(p + "mlp.up_proj.weight", sh->ffn, C, false);
    tensor(p + "mlp.down_proj.weight", C, sh->ffn, false);
  }
  w.write(out + "/model.safetensors");
  std::string text = cfg.dump(2) + "\n";
  write_file_atomic(out + "/config.json", text.data(), text.size());
  std::string tok = synthetic_tokenizer(sh->vocab).dump() + "\n";
  write_file_atomic(out + "/tokenizer.json", tok.data(), tok.size());
  std::printf("%s\n", out.c_str());
  return 0;
}

}  // namespace lmp

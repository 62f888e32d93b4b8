#include "testutil.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <sys/wait.h>

#include "core/half.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace lmp::test {

namespace fs = std::filesystem;

std::string shared_dir() {
  if (const char* e = std::getenv("LMP_SHARED")) return e;
  return std::string(LMP_SOURCE_DIR) + "/../shared";
}

bool exists(const std::string& path) { return fs::exists(path); }

std::string temp_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / fmt::format("lmpress-test-{}-{}", tag, ::getpid());
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

double hessian_error(const float* W, const float* Wq, int64_t rows, int64_t cols, const std::vector<double>& H) {
  double e = 0;
  std::vector<double> d(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t i = 0; i < cols; i++) d[size_t(i)] = double(W[r * cols + i]) - Wq[r * cols + i];
    for (int64_t i = 0; i < cols; i++)
      for (int64_t j = 0; j < cols; j++) e += d[size_t(i)] * H[size_t(i * cols + j)] * d[size_t(j)];
  }
  return e;
}

double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = std::max(m, std::fabs(double(a[i])));
  return m;
}

double max_rel_diff(const float* a, const float* b, size_t n) {
  return max_abs_diff(a, b, n) / std::max(max_abs(b, n), 1e-30);
}

double rel_rms_error(const float* a, const float* ref, size_t n) {
  double e = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    e += (double(a[i]) - ref[i]) * (double(a[i]) - ref[i]);
    r += double(ref[i]) * ref[i];
  }
  return std::sqrt(e / std::max(r, 1e-300));
}

std::vector<float> random_vector(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<std::vector<int>> random_tokens(int n, int L, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, vocab - 1);
  std::vector<std::vector<int>> s(static_cast<size_t>(n), std::vector<int>(static_cast<size_t>(L)));
  for (auto& x : s)
    for (auto& t : x) t = d(rng);
  return s;
}

static void add_tensor(SafeTensorsWriter& w, const std::string& name, std::vector<int64_t> shape,
                       const std::vector<float>& v, const std::string& dtype) {
  if (dtype == "F32") return w.add_f32(name, std::move(shape), v.data());
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); i++) h[i] = dtype == "F16" ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
  w.add(name, dtype == "F16" ? DType::F16 : DType::BF16, std::move(shape), h.data(), h.size() * 2);
}

ModelConfig write_tiny_model(const std::string& dir, const TinySpec& s) {
  fs::create_directories(dir);
  int hs = s.head_dim ? s.head_dim : s.hidden / s.heads;
  nlohmann::json cfg = {{"architectures", {s.arch}},
                        {"hidden_size", s.hidden},
                        {"num_hidden_layers", s.layers},
                        {"num_attention_heads", s.heads},
                        {"num_key_value_heads", s.kv_heads},
                        {"head_dim", hs},
                        {"intermediate_size", s.ffn},
                        {"vocab_size", s.vocab},
                        {"max_position_embeddings", s.max_pos},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 10000.0},
                        {"rope_scaling", s.rope_scaling},
                        {"tie_word_embeddings", s.tied},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2}};
  std::string text = cfg.dump(2);
  write_file_atomic(dir + "/config.json", text.data(), text.size());
  SafeTensorsWriter w;
  uint32_t seed = s.seed * 1000;
  const int C = s.hidden;
  auto mat = [&](const std::string& name, int out, int in) {
    add_tensor(w, name, {out, in}, random_vector(size_t(out) * in, seed++, 1.0f / std::sqrt(float(in))), s.dtype);
  };
  auto norm = [&](const std::string& name) {
    auto v = random_vector(size_t(C), seed++, 0.1f);
    for (auto& x : v) x += 1.0f;
    w.add_f32(name, {C}, v.data());
  };
  w.add_f32("model.embed_tokens.weight", {s.vocab, C}, random_vector(size_t(s.vocab) * C, seed++, 1.0f).data());
  norm("model.norm.weight");
  bool bias = s.arch == "Qwen2ForCausalLM";
  for (int l = 0; l < s.layers; l++) {
    std::string p = fmt::format("model.layers.{}.", l);
    norm(p + "input_layernorm.weight");
    norm(p + "post_attention_layernorm.weight");
    mat(p + "self_attn.q_proj.weight", s.heads * hs, C);
    mat(p + "self_attn.k_proj.weight", s.kv_heads * hs, C);
    mat(p + "self_attn.v_proj.weight", s.kv_heads * hs, C);
    mat(p + "self_attn.o_proj.weight", C, s.heads * hs);
    mat(p + "mlp.gate_proj.weight", s.ffn, C);
    mat(p + "mlp.up_proj.weight", s.ffn, C);
    mat(p + "mlp.down_proj.weight", C, s.ffn);
    if (bias)
      for (auto [n, o] : {std::pair{"q", s.heads * hs}, {"k", s.kv_heads * hs}, {"v", s.kv_heads * hs}})
        w.add_f32(p + "self_attn." + n + "_proj.bias", {o}, random_vector(size_t(o), seed++, 0.5f).data());
  }
  if (!s.tied) mat("lm_head.weight", s.vocab, C);
  w.write(dir + "/model.safetensors");
  return ModelConfig::from_json(cfg, dir + "/config.json");
}

int run_lmpress(const std::string& args, std::string* out, std::string* err) {
  std::string dir = temp_dir("run");
  std::string cmd = fmt::format("{} {} >{}/o 2>{}/e", LMP_BINARY, args, dir, dir);
  int st = std::system(cmd.c_str());
  if (out) *out = read_file(dir + "/o");
  if (err) *err = read_file(dir + "/e");
  fs::remove_all(dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::vector<float> prefill_logits(const Model& m, const std::vector<int>& ids) {
  Forward fw(m);
  KVCache cache(m.cfg, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.cfg.vocab));
  fw.tokens(ids.data(), int(ids.size()), cache, out.data());
  return out;
}

}  // namespace lmp::test

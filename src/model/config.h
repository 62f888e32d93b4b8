// Model hyper-parameters from a Hugging Face config.json, and the architecture table that maps HF
// architectures onto lmpress's one decoder definition (mlx-lm style: wiring is data, not if-chains).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmp {

enum class RopeScaling { None, Linear, Llama3 };

struct ArchInfo {
  const char* hf_name;    // "LlamaForCausalLM"
  const char* model_type; // "llama"
  bool qkv_bias;          // Qwen2 has q/k/v biases
};
const std::vector<ArchInfo>& known_architectures();

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  int hidden = 0;         // C
  int n_layers = 0;       // L
  int n_heads = 0;        // H
  int n_kv_heads = 0;     // KV (GQA: H % KV == 0)
  int head_dim = 0;       // hs
  int intermediate = 0;   // F
  int vocab = 0;          // V
  int max_pos = 2048;
  float rms_eps = 1e-5f;
  float rope_theta = 10000.f;
  RopeScaling rope_scaling = RopeScaling::None;
  float rope_factor = 1.f;              // linear / llama3
  float rope_low_freq_factor = 1.f;     // llama3
  float rope_high_freq_factor = 4.f;    // llama3
  int rope_orig_max_pos = 8192;         // llama3
  bool tie_embeddings = false;
  bool qkv_bias = false;
  int bos_id = 1, eos_id = 2;
  // Per-layer widths after structured pruning; empty = uniform (n_heads / n_kv_heads / intermediate).
  std::vector<int> layer_heads, layer_kv_heads, layer_intermediate;
  // SliceGPT: every block carries residual shortcut matrices (Block::attn_shortcut / mlp_shortcut).
  bool residual_shortcuts = false;

  int heads(int l) const { return layer_heads.empty() ? n_heads : layer_heads[l]; }
  int kv_heads(int l) const { return layer_kv_heads.empty() ? n_kv_heads : layer_kv_heads[l]; }
  int ffn(int l) const { return layer_intermediate.empty() ? intermediate : layer_intermediate[l]; }

  // Parses config.json content; path is used in error messages.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& path);
  static ModelConfig from_file(const std::string& path);
  // The HF config.json form (plus lmpress extensions for per-layer widths).
  nlohmann::json to_json() const;
};

}  // namespace lmp

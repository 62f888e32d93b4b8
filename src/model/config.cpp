#include "model/config.h"

#include "core/error.h"
#include "core/mmap_file.h"

namespace lmp {

const std::vector<ArchInfo>& known_architectures() {
  static const std::vector<ArchInfo> t = {
      {"LlamaForCausalLM", "llama", false},
      {"MistralForCausalLM", "mistral", false},
      {"Qwen2ForCausalLM", "qwen2", true},
  };
  return t;
}

template <class T>
static T required(const nlohmann::json& j, const char* key, const std::string& path) {
  check(j.contains(key) && !j[key].is_null(), "{}: missing field '{}'", path, key);
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", path, key, j[key].dump());
  }
}

template <class T>
static T optional(const nlohmann::json& j, const char* key, T dflt, const std::string& path) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("{}: field '{}' has the wrong type ({})", path, key, j[key].dump());
  }
}

static int first_id(const nlohmann::json& j, const char* key, int dflt) {
  if (!j.contains(key) || j[key].is_null()) return dflt;
  if (j[key].is_array()) return j[key].empty() ? dflt : j[key][0].get<int>();
  return j[key].get<int>();
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& path) {
  check(j.is_object(), "{}: not a JSON object", path);
  ModelConfig c;
  auto archs = optional<std::vector<std::string>>(j, "architectures", {}, path);
  check(!archs.empty(), "{}: missing field 'architectures'", path);
  const ArchInfo* arch = nullptr;
  for (const auto& a : known_architectures())
    if (archs[0] == a.hf_name) arch = &a;
  check(arch != nullptr, "{}: unknown architecture '{}' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)",
        path, archs[0]);
  c.architecture = arch->hf_name;
  c.model_type = optional<std::string>(j, "model_type", arch->model_type, path);
  c.hidden = required<int>(j, "hidden_size", path);
  c.n_layers = required<int>(j, "num_hidden_layers", path);
  c.n_heads = required<int>(j, "num_attention_heads", path);
  c.n_kv_heads = optional<int>(j, "num_key_value_heads", c.n_heads, path);
  c.intermediate = required<int>(j, "intermediate_size", path);
  c.vocab = required<int>(j, "vocab_size", path);
  check(c.hidden > 0 && c.n_layers > 0 && c.n_heads > 0 && c.n_kv_heads > 0 && c.intermediate > 0 && c.vocab > 0,
        "{}: sizes must be positive", path);
  check(c.n_heads % c.n_kv_heads == 0, "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", path,
        c.n_heads, c.n_kv_heads);
  c.head_dim = optional<int>(j, "head_dim", 0, path);
  if (c.head_dim == 0) {
    check(c.hidden % c.n_heads == 0, "{}: hidden_size {} not divisible by num_attention_heads {}", path, c.hidden,
          c.n_heads);
    c.head_dim = c.hidden / c.n_heads;
  }
  check(c.head_dim % 2 == 0, "{}: head_dim {} must be even for RoPE", path, c.head_dim);
  c.max_pos = optional<int>(j, "max_position_embeddings", 2048, path);
  c.rms_eps = optional<float>(j, "rms_norm_eps", 1e-6f, path);
  c.rope_theta = optional<float>(j, "rope_theta", 10000.f, path);
  c.tie_embeddings = optional<bool>(j, "tie_word_embeddings", false, path);
  c.qkv_bias = arch->qkv_bias || optional<bool>(j, "attention_bias", false, path);
  c.bos_id = first_id(j, "bos_token_id", 1);
  c.eos_id = first_id(j, "eos_token_id", 2);
  if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) {
    const auto& rs = j["rope_scaling"];
    std::string type = rs.value("rope_type", rs.value("type", std::string("")));
    if (type == "linear") {
      c.rope_scaling = RopeScaling::Linear;
      c.rope_factor = optional<float>(rs, "factor", 1.f, path);
    } else if (type == "llama3") {
      c.rope_scaling = RopeScaling::Llama3;
      c.rope_factor = optional<float>(rs, "factor", 8.f, path);
      c.rope_low_freq_factor = optional<float>(rs, "low_freq_factor", 1.f, path);
      c.rope_high_freq_factor = optional<float>(rs, "high_freq_factor", 4.f, path);
      c.rope_orig_max_pos = optional<int>(rs, "original_max_position_embeddings", 8192, path);
    } else if (!type.empty() && type != "default") {
      fail("{}: unsupported rope_scaling type '{}' (supported: linear, llama3)", path, type);
    }
  }
  if (j.contains("lmpress_layer_heads")) {
    c.layer_heads = j["lmpress_layer_heads"].get<std::vector<int>>();
    c.layer_kv_heads = j["lmpress_layer_kv_heads"].get<std::vector<int>>();
    c.layer_intermediate = j["lmpress_layer_intermediate"].get<std::vector<int>>();
    check(int(c.layer_heads.size()) == c.n_layers && int(c.layer_kv_heads.size()) == c.n_layers &&
              int(c.layer_intermediate.size()) == c.n_layers,
          "{}: lmpress per-layer widths must have num_hidden_layers entries", path);
  }
  c.residual_shortcuts = optional<bool>(j, "lmpress_residual_shortcuts", false, path);
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
  return from_json(j, path);
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = {
      {"architectures", {architecture}},
      {"model_type", model_type},
      {"hidden_size", hidden},
      {"num_hidden_layers", n_layers},
      {"num_attention_heads", n_heads},
      {"num_key_value_heads", n_kv_heads},
      {"head_dim", head_dim},
      {"intermediate_size", intermediate},
      {"vocab_size", vocab},
      {"max_position_embeddings", max_pos},
      {"rms_norm_eps", rms_eps},
      {"rope_theta", rope_theta},
      {"tie_word_embeddings", tie_embeddings},
      {"attention_bias", qkv_bias},
      {"hidden_act", "silu"},
      {"bos_token_id", bos_id},
      {"eos_token_id", eos_id},
      {"torch_dtype", "float32"},
  };
  if (rope_scaling == RopeScaling::Linear) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_factor}};
  if (rope_scaling == RopeScaling::Llama3)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_factor},
                         {"low_freq_factor", rope_low_freq_factor},
                         {"high_freq_factor", rope_high_freq_factor},
                         {"original_max_position_embeddings", rope_orig_max_pos}};
  if (!layer_heads.empty()) {
    j["lmpress_layer_heads"] = layer_heads;
    j["lmpress_layer_kv_heads"] = layer_kv_heads;
    j["lmpress_layer_intermediate"] = layer_intermediate;
  }
  if (residual_shortcuts) j["lmpress_residual_shortcuts"] = true;
  return j;
}

}  // namespace lmp

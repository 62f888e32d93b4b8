// Shared test helpers: where the shared data is, tiny random HF checkpoints, the error metrics (defined
// once here), and running the lmpress binary.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model/config.h"

namespace lmp {
struct Model;
}

namespace lmp::test {

// ../shared beside the repository (read-only real models and data).
std::string shared_dir();
// GTEST_SKIP()s with a message naming the path when it does not exist; returns the path.
#define LMP_REQUIRE_SHARED(rel)                                                              \
  ({                                                                                         \
    std::string _p = ::lmp::test::shared_dir() + "/" + (rel);                                \
    if (!::lmp::test::exists(_p)) GTEST_SKIP() << "shared data absent: " << _p << " (see README)"; \
    _p;                                                                                      \
  })
bool exists(const std::string& path);
std::string temp_dir(const std::string& tag);  // fresh empty directory under the build's tmp

// Error metrics, the only definitions in the tests.
double max_abs_diff(const float* a, const float* b, size_t n);
double max_abs(const float* a, size_t n);
// max |a-b| / max(max|b|, tiny): relative to the reference's scale.
double max_rel_diff(const float* a, const float* b, size_t n);
double rel_rms_error(const float* a, const float* ref, size_t n);  // ‖a−ref‖₂ / ‖ref‖₂
// Σ_r d_rᵀ H d_r, d_r = W[r] − Wq[r] (rows × cols), H (cols × cols): the layer-output (proxy) loss tr(ΔW H ΔWᵀ).
double hessian_error(const float* W, const float* Wq, int64_t rows, int64_t cols, const std::vector<double>& H);

struct TinySpec {
  int hidden = 32, layers = 2, heads = 4, kv_heads = 2, head_dim = 0, ffn = 48, vocab = 64, max_pos = 128;
  bool tied = false;
  std::string arch = "LlamaForCausalLM";  // "Qwen2ForCausalLM" adds q/k/v biases
  std::string dtype = "F32";              // or "F16", "BF16" for the projections
  nlohmann::json rope_scaling = nullptr;
  uint32_t seed = 1;
};
// Writes config.json + model.safetensors with random weights (N(0, 0.2²)-ish, norms around 1) into dir.
ModelConfig write_tiny_model(const std::string& dir, const TinySpec& s);

// Runs the lmpress binary with args; returns exit status, captures stdout/stderr.
int run_lmpress(const std::string& args, std::string* out = nullptr, std::string* err = nullptr);

std::vector<float> random_vector(size_t n, uint32_t seed, float scale = 1.0f);
// n sequences of L token ids uniform in [0, vocab) (calibration / held-out Samples for tiny models).
std::vector<std::vector<int>> random_tokens(int n, int L, int vocab, uint32_t seed);

// The inference engine's logits (ids.size(), vocab) for one prefill of ids.
std::vector<float> prefill_logits(const Model& m, const std::vector<int>& ids);

}  // namespace lmp::test

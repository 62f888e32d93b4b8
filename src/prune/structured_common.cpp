#include "prune/structured_common.h"

#include <cblas.h>
#include <exception>
#include <omp.h>

#include "core/error.h"
#include "eval/perplexity.h"
#include "kernels/dense.h"
#include "model/forward.h"

namespace lmp {

std::vector<float> dense_weight(const Linear& l) { return l.w->dense(); }

Linear make_dense_linear(int64_t out, int64_t in, std::vector<float> W, std::vector<float> bias) {
  check(int64_t(W.size()) == out * in, "internal: dense Linear of {} values, want {}x{}", W.size(), out, in);
  Linear lin;
  lin.w = std::make_unique<DenseF32>(out, in, std::move(W));
  lin.bias = std::move(bias);
  return lin;
}

std::vector<float> take_rows(const std::vector<float>& W, int64_t cols, const std::vector<int>& keep) {
  std::vector<float> R(keep.size() * size_t(cols));
  for (size_t i = 0; i < keep.size(); i++)
    std::copy_n(W.data() + size_t(keep[i]) * cols, cols, R.data() + i * size_t(cols));
  return R;
}

std::vector<float> take_cols(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<int>& keep) {
  std::vector<float> R(size_t(rows) * keep.size());
  for (int64_t r = 0; r < rows; r++)
    for (size_t j = 0; j < keep.size(); j++) R[size_t(r) * keep.size() + j] = W[size_t(r * cols + keep[j])];
  return R;
}

void check_sparsity(double s, const char* what) {
  check(s > 0 && s < 1, "{}: sparsity {} must be in (0, 1) (the fraction of structure to remove)", what, s);
}

double calibration_nll(const Model& m, const Samples& samples) {
  check(!samples.empty(), "calibration: no samples");
  std::vector<int> ids;
  for (const auto& s : samples) ids.insert(ids.end(), s.begin(), s.end());
  PplOptions o;
  o.ctx = int(samples[0].size());
  o.progress = false;
  return perplexity(m, ids, o).nll;
}

void run_block_samples(const Model& m, int layer, const std::vector<std::vector<float>>& inputs, int L,
                       const SampleHook& hook, std::vector<std::vector<float>>* out) {
  if (out) out->resize(inputs.size());
  const int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::exception_ptr err;
#pragma omp parallel
  {
    Forward fw(m);
    std::vector<float> x;
#pragma omp for schedule(static)
    for (size_t s = 0; s < inputs.size(); s++) {
      try {
        x = inputs[s];
        KVCache cache(m.cfg, L);
        LinearHook h = [&](int, LinearKind k, const float* X, int64_t n, int64_t) { hook(s, k, X, n); };
        fw.block(layer, x.data(), L, cache, hook ? &h : nullptr);
        if (out) (*out)[s] = x;
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
    }
  }
  openblas_set_num_threads(blas_threads);
  if (err) std::rethrow_exception(err);
}

void sync_layer_widths(Model& m) {
  ModelConfig& c = m.cfg;
  c.n_layers = int(m.blocks.size());
  c.layer_heads.clear(), c.layer_kv_heads.clear(), c.layer_intermediate.clear();
  bool uniform = true;
  for (const Block& b : m.blocks) {
    c.layer_heads.push_back(int(b.at(LinearKind::Q).out() / c.head_dim));
    c.layer_kv_heads.push_back(int(b.at(LinearKind::K).out() / c.head_dim));
    c.layer_intermediate.push_back(int(b.at(LinearKind::Gate).out()));
    uniform &= c.layer_heads.back() == c.n_heads && c.layer_kv_heads.back() == c.n_kv_heads &&
               c.layer_intermediate.back() == c.intermediate;
  }
  if (uniform) c.layer_heads.clear(), c.layer_kv_heads.clear(), c.layer_intermediate.clear();
}

}  // namespace lmp

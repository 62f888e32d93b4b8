#include "calib/pipeline.h"

#include <omp.h>
#include <cblas.h>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"

namespace lmp {

namespace {

// Runs block l of m on x (L, C) in place from position 0 with a fresh cache.
void run_block_once(Forward& fw, const Model& m, int l, float* x, int L, const LinearHook* hook) {
  KVCache cache(m.cfg, L);
  fw.block(l, x, L, cache, hook);
}

BlockStats collect_stats(const Model& m, int l, const std::vector<std::vector<float>>& inputs, int L,
                         const StatsRequest& req) {
  const ModelConfig& c = m.cfg;
  const int64_t widths[kInputSites] = {c.hidden, int64_t(c.heads(l)) * c.head_dim, c.hidden, c.ffn(l)};
  BlockStats total;
  for (int s = 0; s < kInputSites; s++) total.site[size_t(s)].init(widths[s], req);
  // Each sample accumulates into its own stats; they are merged in sample order so the sums do not depend
  // on thread scheduling (needed for bit-identical results across thread and rank counts).
  std::vector<BlockStats> per(inputs.size());
  std::exception_ptr err;
#pragma omp parallel
  {
    Forward fw(m);
    std::vector<float> x;
#pragma omp for schedule(dynamic, 1)
    for (size_t s = 0; s < inputs.size(); s++) {
      try {
        for (int k = 0; k < kInputSites; k++) per[s].site[size_t(k)].init(widths[k], req);
        x = inputs[s];
        LinearHook hook = [&](int, LinearKind kind, const float* X, int64_t n, int64_t) {
          // q/k/v (and gate/up) share an input: count it once, at the first Linear of the site.
          if (kind == LinearKind::K || kind == LinearKind::V || kind == LinearKind::Up) return;
          per[s].site[size_t(kInputSite[size_t(kind)])].add(X, n);
        };
        run_block_once(fw, m, l, x.data(), L, &hook);
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
    }
  }
  if (err) std::rethrow_exception(err);
  for (const auto& p : per)
    for (int k = 0; k < kInputSites; k++) total.site[size_t(k)].merge(p.site[size_t(k)]);
  return total;
}

void advance_inputs(const Model& m, int l, std::vector<std::vector<float>>& inputs, int L) {
#pragma omp parallel
  {
    Forward fw(m);
#pragma omp for schedule(dynamic, 1)
    for (size_t s = 0; s < inputs.size(); s++) run_block_once(fw, m, l, inputs[s].data(), L, nullptr);
  }
}

}  // namespace

PipelineReport run_sequential(Model& m, const Samples& samples, const std::vector<BlockModifier*>& mods,
                              const PipelineOptions& o) {
  check(!samples.empty(), "calibration: no samples");
  const int L = int(samples[0].size()), C = m.cfg.hidden;
  check(L <= m.cfg.max_pos, "calibration --seqlen {} exceeds the model's max_position_embeddings {}", L, m.cfg.max_pos);
  PipelineReport rep;
  double t0 = now_seconds();
  // Single-threaded BLAS inside the per-sample parallel loops.
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::vector<std::vector<float>> inputs(samples.size());
  {
    Forward fw(m);
    for (size_t s = 0; s < samples.size(); s++) {
      inputs[s].resize(size_t(L) * C);
      fw.embed(samples[s].data(), L, inputs[s].data());
    }
  }
  rep.activation_bytes = samples.size() * size_t(L) * C * sizeof(float);
  Progress prog("calibrate blocks", m.cfg.n_layers, "block");
  for (int l = 0; l < m.cfg.n_layers; l++) {
    for (BlockModifier* mod : mods) {
      BlockStats stats = collect_stats(m, l, inputs, L, mod->stats_request());
      Forward fw(m);
      BlockContext ctx{m, l, inputs, stats, L,
                       [&](int s, float* out) {
                         std::copy(inputs[size_t(s)].begin(), inputs[size_t(s)].end(), out);
                         run_block_once(fw, m, l, out, L, nullptr);
                       },
                       [&](int s, float* out, const std::function<void(LinearKind, const float*, int64_t)>& h) {
                         std::copy(inputs[size_t(s)].begin(), inputs[size_t(s)].end(), out);
                         LinearHook hook = [&](int, LinearKind k, const float* X, int64_t n, int64_t) { h(k, X, n); };
                         run_block_once(fw, m, l, out, L, &hook);
                       }};
      openblas_set_num_threads(blas_threads);  // modifiers run their own (BLAS/LAPACK-heavy) math
      mod->apply(ctx);
      openblas_set_num_threads(1);
    }
    advance_inputs(m, l, inputs, L);
    if (o.progress) prog.update(l + 1);
  }
  if (o.progress) prog.finish();
  openblas_set_num_threads(blas_threads);
  rep.seconds = now_seconds() - t0;
  rep.peak_rss = peak_rss_bytes();
  return rep;
}

void run_data_free(Model& m, const std::vector<BlockModifier*>& mods, const PipelineOptions& o) {
  static const std::vector<std::vector<float>> no_inputs;
  BlockStats no_stats;
  Progress prog("compress blocks", m.cfg.n_layers, "block");
  for (int l = 0; l < m.cfg.n_layers; l++) {
    for (BlockModifier* mod : mods) {
      check(!mod->needs_calibration(), "{} needs calibration data (--calib FILE)", mod->name());
      BlockContext ctx{m, l, no_inputs, no_stats, 0, nullptr, nullptr};
      mod->apply(ctx);
    }
    if (o.progress) prog.update(l + 1);
  }
  if (o.progress) prog.finish();
}

}  // namespace lmp

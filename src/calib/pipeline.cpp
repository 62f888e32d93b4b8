#include "calib/pipeline.h"

#include <omp.h>
#include <cblas.h>
#include <cstring>

#include "calib/dist.h"
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

// Sums of one sample's statistics as one flat vector per sample: per site xxt, abs_sum, sq_sum, count.
void flatten_sums(const BlockStats& b, std::vector<double>& out) {
  out.clear();
  for (const auto& st : b.site) {
    out.insert(out.end(), st.xxt.begin(), st.xxt.end());
    out.insert(out.end(), st.abs_sum.begin(), st.abs_sum.end());
    out.insert(out.end(), st.sq_sum.begin(), st.sq_sum.end());
    out.push_back(double(st.count));
  }
}

// Data-parallel merge (dist.h): the per-sample sums of all ranks are added on rank 0 in global sample order
// (the 1-rank order, so bit-identical), broadcast back; max|x| is an element-wise max over ranks.
void merge_distributed(const std::vector<BlockStats>& per, int64_t n_global, BlockStats& total) {
  std::vector<double> buf, sum;
  BlockStats zero = total;
  flatten_sums(zero, buf);
  sum.resize(buf.size());
  dist::ordered_sum(n_global, int64_t(sum.size()), [&](int64_t i) {
    flatten_sums(per[size_t(i)], buf);
    return static_cast<const double*>(buf.data());
  }, sum.data());
  size_t o = 0;
  for (int k = 0; k < kInputSites; k++) {
    LinearStats& st = total.site[size_t(k)];
    for (auto* v : {&st.xxt, &st.abs_sum, &st.sq_sum})
      for (double& x : *v) x = sum[o++];
    st.count = int64_t(sum[o++]);
    for (const auto& p : per)
      for (size_t j = 0; j < st.abs_max.size(); j++)
        st.abs_max[j] = std::max(st.abs_max[j], p.site[size_t(k)].abs_max[j]);
    dist::allreduce_max(st.abs_max.data(), int64_t(st.abs_max.size()));
  }
}

// Checksum of block l as stored (formats, dequantized weights, biases, norms): every rank must hold the
// same block after a modifier, since each applies it to the same merged statistics.
uint64_t block_checksum(const Model& m, int l) {
  const Block& b = m.blocks[size_t(l)];
  uint64_t h = dist::fnv1a(b.attn_norm.data(), b.attn_norm.size() * sizeof(float));
  h = dist::fnv1a(b.ffn_norm.data(), b.ffn_norm.size() * sizeof(float), h);
  std::vector<float> W;
  for (const Linear& lin : b.lin) {
    std::string f = lin.w->format();
    h = dist::fnv1a(f.data(), f.size(), h);
    W.resize(size_t(lin.w->rows() * lin.w->cols()));
    lin.w->dequantize(W.data());
    h = dist::fnv1a(W.data(), W.size() * sizeof(float), h);
    h = dist::fnv1a(lin.bias.data(), lin.bias.size() * sizeof(float), h);
  }
  return h;
}

void check_same_block(const Model& m, int l, const std::string& modifier) {
  uint64_t mine = block_checksum(m, l);
  std::vector<uint8_t> root(sizeof mine);
  std::memcpy(root.data(), &mine, sizeof mine);
  dist::broadcast(root);
  uint64_t r0;
  std::memcpy(&r0, root.data(), sizeof r0);
  check(r0 == mine,
        "data-parallel calibration: after modifier '{}' rank {} holds different weights for block {} than rank 0 "
        "(checksum {:016x} vs {:016x}); the modifier depends on rank-local samples (e.g. AWQ's search over "
        "ctx.inputs) or on the thread count: run it with one rank",
        modifier, dist::rank(), l, mine, r0);
}

// Per-sample statistics of block l on the (local) inputs.
std::vector<BlockStats> collect_per_sample(const Model& m, int l, const std::vector<std::vector<float>>& inputs,
                                           int L, const StatsRequest& req) {
  const ModelConfig& c = m.cfg;
  const int64_t widths[kInputSites] = {c.hidden, int64_t(c.heads(l)) * c.head_dim, c.hidden, c.ffn(l)};
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
  return per;
}

// Statistics of block l over all samples (every rank's shard), merged in global sample order.
BlockStats collect_stats(const Model& m, int l, const std::vector<std::vector<float>>& inputs, int L,
                         const StatsRequest& req, int64_t n_global) {
  const ModelConfig& c = m.cfg;
  const int64_t widths[kInputSites] = {c.hidden, int64_t(c.heads(l)) * c.head_dim, c.hidden, c.ffn(l)};
  BlockStats total;
  for (int s = 0; s < kInputSites; s++) total.site[size_t(s)].init(widths[s], req);
  std::vector<BlockStats> per = collect_per_sample(m, l, inputs, L, req);
  if (dist::size() > 1) {
    merge_distributed(per, n_global, total);
    return total;
  }
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
  // Data parallel (dist.h): this rank embeds and advances only its contiguous shard of the samples.
  const int P = dist::size();
  check(int64_t(samples.size()) >= P,
        "data-parallel calibration: {} ranks but only {} calibration samples (--nsamples): every rank needs "
        "at least one sample", P, samples.size());
  const dist::Range shard = dist::my_shard(int64_t(samples.size()));
  PipelineReport rep;
  double t0 = now_seconds();
  // Single-threaded BLAS inside the per-sample parallel loops.
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::vector<std::vector<float>> inputs(size_t(shard.size()));
  {
    Forward fw(m);
    for (size_t s = 0; s < inputs.size(); s++) {
      inputs[s].resize(size_t(L) * C);
      fw.embed(samples[size_t(shard.begin) + s].data(), L, inputs[s].data());
    }
  }
  rep.activation_bytes = inputs.size() * size_t(L) * C * sizeof(float);
  Progress prog("calibrate blocks", m.cfg.n_layers, "block");
  for (int l = 0; l < m.cfg.n_layers; l++) {
    for (BlockModifier* mod : mods) {
      BlockStats stats = collect_stats(m, l, inputs, L, mod->stats_request(), int64_t(samples.size()));
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
      if (P > 1) check_same_block(m, l, mod->name());
    }
    advance_inputs(m, l, inputs, L);
    if (o.progress && dist::is_root()) prog.update(l + 1);
  }
  if (o.progress && dist::is_root()) prog.finish();
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

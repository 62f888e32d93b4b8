#include "eval/perplexity.h"

#include <cblas.h>
#include <cmath>
#include <omp.h>

#include "calib/dist.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"

namespace lmp {

double token_nll(const float* logits, int vocab, int target) {
  double mx = logits[0];
  for (int i = 1; i < vocab; i++) mx = std::max(mx, double(logits[i]));
  double s = 0;
  for (int i = 0; i < vocab; i++) s += std::exp(double(logits[i]) - mx);
  return -(double(logits[target]) - mx - std::log(s));
}

PplResult perplexity(const Model& m, const std::vector<int>& ids, const PplOptions& opt) {
  const int ctx = opt.ctx, stride = opt.stride > 0 ? opt.stride : ctx;
  check(ctx >= 2, "--ctx {}: must be at least 2", ctx);
  check(stride <= ctx, "--stride {} must not exceed --ctx {}", stride, ctx);
  check((long)ids.size() >= ctx, "text has {} tokens, fewer than one window of --ctx {}", ids.size(), ctx);
  long nwin = (long(ids.size()) - ctx) / stride + 1;
  if (opt.max_windows > 0) nwin = std::min<long>(nwin, opt.max_windows);
  const int V = m.cfg.vocab;

  // Windows run in parallel, one per thread, with single-threaded kernels inside.
  // Data parallel (calib/dist.h): this rank runs a contiguous shard of the windows; the per-window NLL sums
  // are gathered on rank 0 in window order and added there as with one rank (bit-identical).
  const dist::Range shard = dist::my_shard(nwin);
  check(nwin >= dist::size(), "perplexity: {} ranks but only {} windows", dist::size(), nwin);
  const long nloc = long(shard.size()), w0 = long(shard.begin);
  std::vector<double> nll(size_t(nloc), 0.0);
  std::vector<long> scored(size_t(nloc), 0);
  const bool show = opt.progress && dist::is_root();
  Progress prog("ppl windows", nloc, "tok");
  long done = 0;
  double t0 = now_seconds();
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::exception_ptr err;
#pragma omp parallel
  {
    Forward fw(m);
    KVCache cache(m.cfg, ctx, opt.kv);
    std::vector<float> logits(size_t(ctx) * V);
#pragma omp for schedule(dynamic, 1)
    for (long i = 0; i < nloc; i++) {
      const long w = w0 + i;
      try {
        const int* x = ids.data() + w * stride;
        cache.clear();
        if (opt.kv.quantized()) {
          // Chunked prefill: each chunk attends to the already-quantized past, as decoding would (WKVQuant's
          // past-only quantization leaves a whole chunk exact, so it is scored token by token, as decoded).
          const int chunk = opt.kv.method == KVMethod::Wkv ? 1 : opt.kv.group_tokens;
          for (int c0 = 0; c0 < ctx; c0 += chunk) {
            int nc = std::min(chunk, ctx - c0);
            fw.tokens(x + c0, nc, cache, logits.data() + size_t(c0) * V);
          }
        } else {
          fw.tokens(x, ctx, cache, logits.data());
        }
        // Score targets x[t+1] for t in [first, ctx-1): the first window scores all, later ones the new part.
        int first = w == 0 ? 0 : std::max(0, ctx - 1 - stride);
        double s = 0;
        for (int t = first; t < ctx - 1; t++) s += token_nll(logits.data() + size_t(t) * V, V, x[t + 1]);
        nll[size_t(i)] = s;
        scored[size_t(i)] = ctx - 1 - first;
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
#pragma omp atomic
      done++;
      if (show && omp_get_thread_num() == 0) prog.update(done, done * ctx);
    }
  }
  openblas_set_num_threads(blas_threads);
  if (err) std::rethrow_exception(err);
  if (show) prog.finish();
  PplResult r;
  double total = 0;
  long n_scored = 0;
  for (long s : scored) n_scored += s;
  std::vector<double> all = dist::gather_ordered(nll, nwin);  // rank 0: every window's NLL in window order
  for (long w = 0; w < long(all.size()); w++)
    total += all[size_t(w)];  // fixed order: the sum does not depend on thread scheduling or rank count
  double sums[2] = {total, double(n_scored)};
  if (dist::size() > 1) {
    double sc = double(n_scored);
    dist::allreduce_sum(&sc, 1);   // token counts are integers: exact in any order
    sums[1] = sc;
    dist::broadcast(sums, 1);      // rank 0's ordered total to every rank
  }
  total = sums[0];
  r.scored = long(sums[1]);
  r.nll = total / double(r.scored);
  r.ppl = std::exp(r.nll);
  r.tokens = long(ids.size());
  r.windows = nwin;
  r.seconds = now_seconds() - t0;
  r.tokens_per_s = double(nwin) * ctx / r.seconds;
  return r;
}

}  // namespace lmp

#include "eval/tasks.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>
#include <omp.h>

#include "core/error.h"
#include "core/progress.h"
#include "eval/perplexity.h"

namespace lmp {

double binomial_stderr(double p, long n) {
  if (n < 2) return 0;
  return std::sqrt(p * (1 - p) / double(n - 1));
}

TokenizedRequest encode_request(const Tokenizer& tok, std::string context, std::string continuation,
                                bool add_bos) {
  // Trailing spaces of the context belong to the continuation (harness _encode_pair).
  size_t keep = context.find_last_not_of(' ');
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep < context.size()) {
    continuation = context.substr(keep) + continuation;
    context.resize(keep);
  }
  bool bos = add_bos && tok.bos_id() >= 0;
  TokenizedRequest r;
  r.ctx = tok.encode(context, bos);
  std::vector<int> whole = tok.encode(context + continuation, bos);
  check(whole.size() > r.ctx.size(), "continuation '{}' adds no tokens after its context", continuation);
  r.cont.assign(whole.begin() + long(r.ctx.size()), whole.end());
  check(!r.ctx.empty(), "empty context with no BOS token: nothing to condition the continuation on");
  return r;
}

namespace {

// log p(target) and whether target is the argmax, from one row of logits.
void score_token(const float* logits, int V, int target, RequestScore& s) {
  s.ll -= token_nll(logits, V, target);
  int arg = int(std::max_element(logits, logits + V) - logits);
  if (arg != target) s.greedy = false;
}

}  // namespace

std::vector<RequestScore> score_requests(Forward& fw, std::vector<TokenizedRequest> reqs) {
  const ModelConfig& c = fw.model().cfg;
  const int V = c.vocab;
  // Sequences s = ctx ++ cont; the model reads s[0 .. |s|-1) and scores s[|ctx| ..).
  std::vector<std::vector<int>> seq(reqs.size());
  std::vector<size_t> ctx_len(reqs.size());
  for (size_t i = 0; i < reqs.size(); i++) {
    auto& s = seq[i];
    check(!reqs[i].cont.empty() && !reqs[i].ctx.empty(), "request {} has an empty context or continuation", i);
    s = reqs[i].ctx;
    s.insert(s.end(), reqs[i].cont.begin(), reqs[i].cont.end());
    ctx_len[i] = reqs[i].ctx.size();
    // Too long for the model: drop tokens from the left (the harness keeps the last max_length + 1).
    size_t max_len = size_t(c.max_pos) + 1;
    if (s.size() > max_len) {
      size_t drop = s.size() - max_len;
      check(drop < ctx_len[i], "continuation of {} tokens does not fit the model's {} positions",
            reqs[i].cont.size(), c.max_pos);
      s.erase(s.begin(), s.begin() + long(drop));
      ctx_len[i] -= drop;
    }
  }
  // Shared prefix P: the longest common prefix, at most every context's length (logits at P-1 are the
  // first ones any request needs).
  size_t P = ctx_len.empty() ? 0 : *std::min_element(ctx_len.begin(), ctx_len.end());
  for (size_t i = 1; i < seq.size(); i++) {
    size_t k = 0;
    while (k < P && seq[i][k] == seq[0][k]) k++;
    P = k;
  }
  size_t cap = 0;
  for (const auto& s : seq) cap = std::max(cap, s.size() - 1);
  KVCache base(c, int(cap));
  std::vector<float> last(static_cast<size_t>(V));  // logits at position P-1
  if (P > 0) fw.tokens(seq[0].data(), int(P), base, last.data(), /*last_only=*/true);
  std::vector<RequestScore> out(reqs.size());
  std::vector<float> logits;
  for (size_t i = 0; i < seq.size(); i++) {
    const auto& s = seq[i];
    RequestScore& r = out[i];
    r.greedy = true;
    KVCache cache = base;
    size_t n_run = s.size() - 1 - P;  // positions P .. |s|-2
    logits.resize(std::max<size_t>(1, n_run) * size_t(V));
    if (n_run > 0) fw.tokens(s.data() + P, int(n_run), cache, logits.data());
    for (size_t j = ctx_len[i]; j < s.size(); j++) {
      size_t pos = j - 1;  // logits at pos predict s[j]
      const float* row = pos + 1 == P ? last.data() : logits.data() + (pos - P) * size_t(V);
      score_token(row, V, s[j], r);
    }
  }
  return out;
}

TaskResult evaluate_task(const Model& m, const Task& task, const TaskOptions& opt) {
  long n = long(task.items.size());
  if (opt.limit > 0) n = std::min(n, opt.limit);
  check(n > 0, "task {}: no items to evaluate", task.name);
  // Tokenize serially (fast), score in parallel.
  const Tokenizer& tok = m.tokenizer();
  std::vector<std::vector<TokenizedRequest>> reqs(static_cast<size_t>(n));
  for (long i = 0; i < n; i++) {
    const TaskItem& it = task.items[size_t(i)];
    for (size_t k = 0; k < it.continuations.size(); k++)
      reqs[size_t(i)].push_back(encode_request(tok, it.context(k), it.continuations[k], opt.add_bos));
  }
  std::vector<std::vector<RequestScore>> scores(static_cast<size_t>(n));
  Progress prog(task.name, n, "items");
  long done = 0;
  double t0 = now_seconds();
  int blas_threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  std::exception_ptr err;
#pragma omp parallel
  {
    Forward fw(m);
#pragma omp for schedule(dynamic, 1)
    for (long i = 0; i < n; i++) {
      try {
        scores[size_t(i)] = score_requests(fw, reqs[size_t(i)]);
      } catch (...) {
#pragma omp critical
        err = std::current_exception();
      }
#pragma omp atomic
      done++;
      if (opt.progress && omp_get_thread_num() == 0) prog.update(done);
    }
  }
  openblas_set_num_threads(blas_threads);
  if (err) std::rethrow_exception(err);
  if (opt.progress) prog.finish();

  TaskResult r;
  r.name = task.name;
  r.n = n;
  r.has_acc_norm = task.has_acc_norm;
  long correct = 0, correct_norm = 0;
  double ll_sum = 0;
  for (long i = 0; i < n; i++) {
    const TaskItem& it = task.items[size_t(i)];
    const auto& s = scores[size_t(i)];
    for (const auto& q : reqs[size_t(i)]) r.tokens += long(q.cont.size());
    if (task.kind == TaskKind::LastWord) {
      correct += s[0].greedy;
      ll_sum += s[0].ll;
      continue;
    }
    // argmax, first index on ties (numpy's argmax)
    size_t best = 0, best_norm = 0;
    auto norm = [&](size_t k) { return s[k].ll / double(std::max<size_t>(1, it.norm_bytes[k])); };
    for (size_t k = 1; k < s.size(); k++) {
      if (s[k].ll > s[best].ll) best = k;
      if (norm(k) > norm(best_norm)) best_norm = k;
    }
    correct += int(best) == it.gold;
    correct_norm += int(best_norm) == it.gold;
  }
  r.acc = double(correct) / double(n);
  r.acc_stderr = binomial_stderr(r.acc, n);
  if (r.has_acc_norm) {
    r.acc_norm = double(correct_norm) / double(n);
    r.acc_norm_stderr = binomial_stderr(r.acc_norm, n);
  }
  if (task.kind == TaskKind::LastWord) {
    r.has_ppl = true;
    r.ppl = std::exp(-ll_sum / double(n));
  }
  r.seconds = now_seconds() - t0;
  return r;
}

}  // namespace lmp

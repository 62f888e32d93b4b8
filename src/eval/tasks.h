// Zero-shot tasks scored by log-likelihood, in the manner of lm-evaluation-harness (EleutherAI):
//   multiple choice — for each choice, ll = Σ log p(continuation token | everything before it); acc takes the
//     argmax of ll, acc_norm the argmax of ll / (bytes of the choice text, the harness's completion length);
//   last word (LAMBADA) — acc: every target token is the greedy (argmax) next token; ppl = exp(−mean ll).
// A request is (context, continuation) strings. As in the harness's _encode_pair, trailing spaces of the
// context move to the front of the continuation; then ctx = encode(context), cont = encode(context +
// continuation)[len(ctx):] (the continuation's tokens are those of the whole minus those of the context
// when it splits cleanly). Unlike the harness's default for HF models, a BOS is put first when the
// tokenizer has one (llama.cpp does the same; Llama-family models are trained that way).
// Sequences longer than the model's positions lose tokens from the left of the context (harness).
//
// Speed: the requests of one item share their longest common token prefix, which runs once; each choice
// continues from a copy of that KV cache. Items run in parallel (OpenMP), one Forward per thread.
// Loaders for the shared task files live in tasks_loaders.cpp (formats: ../shared/data/tasks/*/SOURCE.md).
#pragma once
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "model/forward.h"

namespace lmp {

enum class TaskKind { MultipleChoice, LastWord };

// One question. contexts has one entry per choice, or a single entry shared by all continuations.
struct TaskItem {
  std::vector<std::string> contexts;
  std::vector<std::string> continuations;  // with the leading space (target delimiter) included
  std::vector<size_t> norm_bytes;          // per choice: bytes of the choice text (acc_norm divisor)
  int gold = 0;
  const std::string& context(size_t i) const { return contexts.size() == 1 ? contexts[0] : contexts[i]; }
};

struct Task {
  std::string name;
  TaskKind kind = TaskKind::MultipleChoice;
  bool has_acc_norm = false;
  std::vector<TaskItem> items;
  long lines = 0;    // examples in the file(s)
  long skipped = 0;  // examples the loader dropped (see note)
  std::string note;  // why items were dropped, preprocessing that differs from the harness
};

// Names accepted by load_task, in a fixed order.
const std::vector<std::string>& task_names();
// Loads `name` from data_dir/<name>/ (the shared layout). Throws lmp::Error naming the file and line.
Task load_task(const std::string& name, const std::string& data_dir);
// Decompresses a .bz2 file into memory (libbz2). Throws lmp::Error naming the file.
std::string read_bz2_file(const std::string& path);

// Token ids of one request: the model reads ctx ++ cont and scores cont.
struct TokenizedRequest {
  std::vector<int> ctx, cont;
};
TokenizedRequest encode_request(const Tokenizer& tok, std::string context, std::string continuation, bool add_bos);

struct RequestScore {
  double ll = 0;        // Σ log p(cont_j | ...)
  bool greedy = false;  // every cont token is the argmax of its logits
};
// Scores the requests of one item with a shared-prefix KV cache (see top).
std::vector<RequestScore> score_requests(Forward& fw, std::vector<TokenizedRequest> reqs);

struct TaskOptions {
  long limit = 0;        // first N items (0 = all)
  bool add_bos = true;
  bool progress = true;
};

struct TaskResult {
  std::string name;
  long n = 0;
  double acc = 0, acc_stderr = 0;
  bool has_acc_norm = false;
  double acc_norm = 0, acc_norm_stderr = 0;
  bool has_ppl = false;
  double ppl = 0;  // LastWord: exp(−mean ll)
  double seconds = 0;
  long tokens = 0;  // tokens scored
};

TaskResult evaluate_task(const Model& m, const Task& task, const TaskOptions& opt);
// Standard error of a mean of n 0/1 outcomes with mean p (sample stdev / √n, as the harness reports).
double binomial_stderr(double p, long n);

}  // namespace lmp

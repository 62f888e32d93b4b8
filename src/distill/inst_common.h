// Shared steps of the instruction-following and in-context-learning distillation recipes (self_instruct,
// lamini, lion, meta_ict, multitask_ict, aicd): instruction generation by the teacher from in-context examples,
// the near-duplicate filter (ROUGE-L), diversity (distinct-n), few-shot prompts and their evaluation by problem
// kind (add / subtract / two-step). The recipes themselves live one per file and are declared in inst_recipes.h.
#pragma once
#include <cstddef>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// ---- text measures -------------------------------------------------------------------------------------------
std::vector<std::string> words(const std::string& s);  // lower-cased alphanumeric runs
// ROUGE-L F1 (β = 1) between the word sequences of a and b: LCS / |a| and LCS / |b| combined harmonically.
double rouge_l(const std::string& a, const std::string& b);
// Distinct-n: unique word n-grams / all word n-grams over the texts (0 when there are none).
double distinct_n(const std::vector<std::string>& texts, int n);

// ---- instructions --------------------------------------------------------------------------------------------
// One entry of an instruction pool: the instruction text (a task question or a free-form prompt), the prompt the
// teacher answers, and the teacher's answer.
struct InstItem {
  std::string instruction;
  bool task = false;  // arithmetic question ("Q: ...\nA:" format) or free-form text prompt
  std::string response;
  std::string prompt() const;  // task ? "Q: <instruction>\nA:" : instruction
};
// The pool as instructions (questions of ctx.problems, then ctx.prompts), responses empty.
std::vector<InstItem> instruction_pool(const KdContext& ctx);
// The teacher's greedy answer (stopped at the first blank line for task items).
std::string teacher_answer(const KdContext& ctx, const InstItem& it);
// The prompt that asks the teacher for a new instruction: the examples as the teacher's own format
// ("Q: <q>\nA:<response>\n\n" for task items, one line each for free-form ones), then the opening of the next
// one ("Q:" + optional " <prefix>").
std::string generation_prompt(const std::vector<const InstItem*>& examples, bool task, const std::string& prefix);
// k in-context examples of one style (task or free-form: the style of a random candidate), drawn with
// replacement from pool[from[i]] (the whole pool when `from` is empty); *task receives the style.
std::vector<const InstItem*> pick_examples(const std::vector<InstItem>& pool, const std::vector<size_t>& from, int k,
                                           std::mt19937_64& rng, bool* task);
// A sampled new instruction (prefix included), cut at the first newline, trimmed.
std::string sample_instruction(const KdContext& ctx, const std::string& gen_prompt, const std::string& prefix,
                               const SamplingOptions& so);
// Malformed-instruction filter: at least 4 words, at most twice the longest pool instruction, and for task
// pools a question (ends with '?', no "A:").
bool well_formed(const std::string& instr, bool task, size_t max_words);
// The highest ROUGE-L of instr against the pool's instructions.
double max_rouge(const std::string& instr, const std::vector<InstItem>& pool);
// An example the student trains on: the item's prompt and the teacher's response.
KdExample inst_example(const InstItem& it, const std::string& source);

// ---- few-shot prompts and evaluation --------------------------------------------------------------------------
enum class ProblemKind { Add = 0, Subtract = 1, TwoStep = 2 };
// From the program's operators: one '+' → Add, a '-' → Subtract, two or more operators → TwoStep.
ProblemKind problem_kind(const WordProblem& p);
const char* kind_name(ProblemKind k);
ProblemKind parse_kind(const std::string& s);  // "add", "subtract", "two-step" (throws naming the value)

// "Q: <q1>\nA:<a1>\n\n...Q: <query>\nA:" — the training format of the task with k solved demonstrations.
std::string few_shot_prompt(const std::vector<std::pair<std::string, std::string>>& demos, const std::string& query);
// k distinct demonstrations of `kind` drawn (seeded) from `pool`, never index `exclude`; fewer when the pool
// has fewer of that kind.
std::vector<size_t> pick_demos(const std::vector<WordProblem>& pool, ProblemKind kind, int k, uint64_t seed,
                               size_t exclude = size_t(-1));

// Few-shot accuracy: each eval problem is prefixed by k demonstrations of its kind from `demos` (reference
// solutions) and answered greedily; overall and per kind (-1 where a kind has no problem).
struct FewShotAccuracy {
  double overall = 0;
  double by_kind[3] = {-1, -1, -1};
};
FewShotAccuracy few_shot_accuracy(const Model& m, const std::vector<WordProblem>& eval,
                                  const std::vector<WordProblem>& demos, int k, uint64_t seed, int max_new = 48);

}  // namespace lmp::distill

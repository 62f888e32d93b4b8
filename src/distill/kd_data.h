// Black-box knowledge distillation data, the shared machinery of every black-box recipe (instruction following:
// Lion, LaMini-LM, Self-Instruct; chain-of-thought: Magister, Fine-tune-CoT, step-by-step, ...; in-context
// learning distillation). In the black-box setting only the teacher's TEXT is seen (Zhu et al. 2023, survey §5.2):
// the teacher writes examples, the recipe filters/rewrites them, and the student is fine-tuned on them with
// cross-entropy. What is stored is a JSONL file (one header line, then one example per line), so a data set can
// be inspected, filtered by hand, and reused:
//   {"recipe": "lion", "stats": {...}}
//   {"prompt": "Q: ...\nA:", "targets": [{"text": " ...", "weight": 1, "role": "rationale"}, ...], "meta": {...}}
// An example is a prompt (context, never scored) followed by target segments, each with its own loss weight, so
// multi-task recipes (Distilling step-by-step: answer and rationale as two targets, L = Σ_seg w_seg · CE_seg)
// are the same stream with different weights.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/generate.h"
#include "model/model.h"
#include "train/trainer.h"

namespace lmp::distill {

struct KdSegment {
  std::string text;
  float weight = 1.0f;              // loss weight of every token of this segment (0: context, not scored)
  std::string role = "response";    // "response", "answer", "rationale", ... (recipes' own labels)
};

struct KdExample {
  std::string prompt;               // context: encoded with BOS, never scored
  std::vector<KdSegment> targets;   // appended in order after the prompt
  nlohmann::json meta = nlohmann::json::object();  // recipe bookkeeping (source, scores, round, ...)
};

struct KdSet {
  std::string recipe;
  std::vector<KdExample> examples;
  nlohmann::json stats = nlohmann::json::object();  // counts written/filtered, teacher calls, ...
};

// JSONL, written atomically (tmp + rename). load_kd_set throws lmp::Error naming the file and line.
void save_kd_set(const KdSet& s, const std::string& path);
KdSet load_kd_set(const std::string& path);

// The token stream the trainer draws windows from: per example BOS + prompt (weight 0) + each target's tokens
// (its weight) + EOS (weight of the last target). The example is encoded as one text (prompt + targets), so
// the targets' tokens are those the model produces after the prompt at inference; a token that straddles a
// segment boundary belongs to the later segment.
train::TokenStream kd_stream(const Tokenizer& tok, const KdSet& s);

// Non-empty lines of a text file (prompts, instructions); throws naming the file when there are none.
std::vector<std::string> read_lines(const std::string& path);

// The teacher (or any model) continues `prompt` for up to max_new tokens (greedy unless so.temperature > 0);
// stops at EOS/BOS and, when stop is non-empty, at the first token whose text contains it (kept out of the result).
// The result is the text that follows the prompt, leading space included (prompt + result = what the model wrote).
std::string complete(const Model& m, const std::string& prompt, int max_new, const SamplingOptions& so = {},
                     const std::string& stop = "");

// log p(continuation | prompt) under m by teacher forcing: the sum over continuation tokens and their count
// (prompt + continuation encoded as one text; the tokens past the prompt's own encoding are the continuation).
struct Score {
  double sum_logp = 0;
  int ntokens = 0;
  double mean() const { return ntokens ? sum_logp / ntokens : 0.0; }
};
Score score(const Model& m, const std::string& prompt, const std::string& continuation);

}  // namespace lmp::distill

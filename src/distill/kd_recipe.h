// The black-box distillation recipes (one file each under src/distill/, one row each in kd_recipe_table()).
// A recipe turns a teacher (and, for the interactive ones, the current student) plus a pool of prompts or task
// problems into the data the student is fine-tuned on: `lmpress train distill --kd-recipe NAME` runs it and then
// fine-tunes the student with cross-entropy on the result (or the recipe trains the student itself between its
// rounds, through ctx.finetune, and returns it). Recipe-specific settings come from --kd-set "key=value,...".
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "distill/kd_data.h"
#include "distill/kd_tasks.h"

namespace lmp::distill {

// Recipe-specific settings ("rounds=2,keep=0.5" on the command line, an object in a recipe stage). Every key
// must be read by the recipe: finish() rejects the rest, naming them.
class KdOptions {
 public:
  KdOptions() = default;
  explicit KdOptions(nlohmann::json j);                  // object of key → number|string|bool
  static KdOptions parse(const std::string& s);          // "k=v,k=v" (values kept as strings)
  double real(const std::string& key, double dflt) const;
  long integer(const std::string& key, long dflt) const;
  std::string str(const std::string& key, const std::string& dflt) const;
  void finish(const std::string& recipe) const;

 private:
  nlohmann::json j_ = nlohmann::json::object();
  mutable std::vector<std::string> used_;
};

struct KdContext {
  const Model* teacher = nullptr;
  const Model* student = nullptr;           // the student before distillation (recipes that ask it)
  std::vector<std::string> prompts;         // --prompts FILE: instructions / story openings (may be empty)
  std::vector<WordProblem> problems;        // --task arith: training problems (may be empty)
  KdOptions opt;
  uint64_t seed = 0;
  int max_new = 64;                         // teacher response length
  bool quiet = false;
  // Fine-tunes a copy of `student` on `data` with the run's training options; recipes that alternate
  // data generation and training (Lion, DRA, ...) call it between rounds.
  std::function<std::unique_ptr<Model>(const Model& student, const KdSet& data)> finetune;
};

struct KdResult {
  KdSet data;                               // the final data (saved with --kd-out)
  std::unique_ptr<Model> student;           // set when the recipe trained the student itself
};

struct KdRecipeInfo {
  const char* name;
  const char* family;       // "instruction", "cot", "icl"
  const char* description;  // one line for --help
  KdResult (*run)(const KdContext& ctx);
};
const std::vector<KdRecipeInfo>& kd_recipe_table();
// Runs the named recipe (throws lmp::Error listing the known ones) and checks its options were all read.
KdResult run_kd_recipe(const std::string& name, const KdContext& ctx);

// Progress line on stderr unless ctx.quiet ("kd <recipe>: ...").
void kd_log(const KdContext& ctx, const std::string& recipe, const std::string& msg);

// The pool a recipe works on as (prompt, reference-or-empty) pairs: ctx.problems as task prompts with their
// reference solutions, then ctx.prompts with no reference. Throws when both are empty.
struct KdItem {
  std::string prompt;
  const WordProblem* problem = nullptr;  // null for free-form prompts
};
std::vector<KdItem> kd_pool(const KdContext& ctx);

// The plain black-box step every recipe starts from: the teacher's greedy response to each item.
KdExample teacher_example(const KdContext& ctx, const KdItem& it, const SamplingOptions& so = {});

}  // namespace lmp::distill

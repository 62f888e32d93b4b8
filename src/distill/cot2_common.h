// Shared steps of the second group of chain-of-thought distillation recipes (PaD, Socratic CoT, LMTWA, DRA, TDIG,
// Selective Reflection-Tuning; one file each). They all work on the checkable arithmetic task (kd_tasks.h) and
// read a solution the way the task writes it: sentences, the last of which before " The answer is N." holds the
// equation "a + b = c". Nothing here is a recipe: it splits, checks and scores text so each recipe file stays
// its own rule.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// The items of the pool that carry a task problem; throws naming the recipe when there are none (these recipes
// need answers they can check: --task arith).
std::vector<KdItem> task_items(const KdContext& ctx, const std::string& recipe);

// m's solution to a task prompt (greedy unless so.temperature > 0), stopped at the blank line.
std::string solve(const Model& m, const std::string& prompt, int max_new, const SamplingOptions& so = {});
// The solution states the problem's answer.
bool solution_right(const std::string& text, const WordProblem& p);

// Sentences of a solution: split after '.', '?' or '!' followed by a space or the end; each keeps its leading
// space and its terminator, so concatenating them gives the text back.
std::vector<std::string> sentences(const std::string& text);

// "LHS = RHS" inside a sentence: LHS is the longest run of digits, spaces, + - * ( ) just before the first '=',
// RHS the integer after it. nullopt when there is no '=', the LHS has no digit or the RHS no number.
struct Equation {
  std::string lhs;
  long rhs = 0;
};
std::optional<Equation> find_equation(const std::string& sentence);
// The last equation's left-hand side in a solution (the program a PaD teacher wrote), nullopt when none.
std::optional<std::string> solution_program(const std::string& text);

// A solution as (rationale, answer sentence): the answer sentence starts at the last " The answer is"; it is
// empty when the text has none.
std::pair<std::string, std::string> split_solution(const std::string& text);

// Mean negative log-likelihood of `text` under m after `context` ("" = after BOS alone).
double mean_nll(const Model& m, const std::string& context, const std::string& text);

}  // namespace lmp::distill

namespace lmp::distill {
// Task metrics of recipes whose student answers in its own format (PaD: the executed program, "pad_accuracy";
// Socratic CoT: the generator → answerer pipeline, "socratic_accuracy"), suffixed by `suffix`; an empty object
// for other recipes. `lmpress train distill` adds them to its JSON beside task_accuracy_after.
nlohmann::json recipe_task_metrics(const std::string& recipe, const Model& m, const std::vector<WordProblem>& ps,
                                   const std::string& suffix);
}  // namespace lmp::distill

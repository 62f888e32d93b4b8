// Socratic CoT (Shridhar, Stolfo, Sachan, 2023, "Distilling Reasoning Capabilities into Smaller Language Models",
// Findings of ACL 2023, arXiv 2212.00193).
// A problem is decomposed into sub-questions, each with its sub-answer; two student roles are distilled from that
// decomposition: a QUESTION GENERATOR (problem → the sequence of sub-questions) and a QUESTION ANSWERER (problem +
// the sub-questions answered so far + the next sub-question → its sub-answer). At inference the generator's output
// feeds the answerer, one sub-question at a time, and the last sub-answer gives the answer.
// The decomposition: the paper has a large LLM write sub-question/sub-solution pairs from the step-by-step
// solution. Our teacher (a 260K-parameter story model fine-tuned on the task) cannot follow such an instruction,
// so the teacher writes its worked solution (greedy), the solution is kept only when its answer is right and its
// equation executes to that answer, and the equation is split, left to right, into one sub-question per operation:
// "3 + 2 + 4" → "What is 3 + 2?" / " 3 + 2 = 5." then "What is 5 + 4?" / " 5 + 4 = 9. The answer is 9.".
// How the two students are realised (setting mode):
//   mode=roles (default): ONE output model with two role prefixes, like the paper's shared-weights variant —
//     "Q: ...\nSub-questions:" asks it to generate, "...\nSub-question: ...\nSub-answer:" asks it to answer;
//     the data holds one generator example and one answerer example per sub-question, and socratic_accuracy runs
//     the generator → answerer pipeline.
//   mode=unified: the paper's unified variant — one target that interleaves sub-questions and sub-answers after
//     the plain task prompt, so the usual task accuracy reads it.
// Settings: mode (roles|unified).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

struct SubStep {
  std::string question;  // "What is 3 + 2?"
  std::string answer;    // " 3 + 2 = 5."
};
// Left-to-right split of a + / − program into one step per operation (a program with * or parentheses is one
// step). Empty when the program does not execute.
std::vector<SubStep> socratic_decompose(const std::string& program);

std::string socratic_qg_prompt(const WordProblem& p);
std::string socratic_qa_prompt(const WordProblem& p, const std::vector<SubStep>& done, const std::string& next);
// The examples of one decomposed problem (mode "roles" or "unified").
std::vector<KdExample> socratic_examples(const WordProblem& p, const std::vector<SubStep>& steps,
                                         const std::string& mode);
// The pipeline at inference: generate sub-questions, answer them in turn; the answer is the last sub-answer's
// stated answer, else the right-hand side of its equation.
std::optional<long> socratic_answer(const Model& m, const WordProblem& p, int max_new = 24);
double socratic_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new = 24);

KdResult socratic_recipe(const KdContext& ctx);

}  // namespace lmp::distill

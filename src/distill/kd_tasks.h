// Tasks with checkable answers for the chain-of-thought and in-context distillation recipes. The survey's CoT
// papers use GSM8K-style arithmetic word problems; the shared real model here (stories260K) writes children's
// stories, so the task is small arithmetic word problems told in TinyStories' words, generated from templates
// with a seed: each has a question, a reference rationale, a program (PaD's program-of-thought), and the answer.
// A teacher that can solve them is made with lmpress itself (fine-tune the model on `task_text` with
// `lmpress train`), then the black-box recipes distill it into a smaller student.
//   prompt:  "Q: Lily had 3 apples. Tom gave her 2 more apples. How many apples does Lily have now?\nA:"
//   target:  " Lily had 3 apples. She got 2 more. 3 + 2 = 5. The answer is 5."
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model.h"

namespace lmp::distill {

struct WordProblem {
  std::string question;   // the story and the question
  std::string rationale;  // reference step-by-step explanation (ends with the equation)
  std::string program;    // the computation as an expression, e.g. "3 + 2"
  long answer = 0;
};

// n problems (addition, subtraction, and two-step ones), deterministic for a seed.
std::vector<WordProblem> word_problems(int n, uint64_t seed);

// The prompt a model answers: "Q: <question>\nA:".
std::string task_prompt(const WordProblem& p);
// " The answer is N." — the answer sentence every recipe ends its targets with.
std::string answer_sentence(long answer);
// The reference solution text for the task prompt: " <rationale> The answer is N."
std::string reference_solution(const WordProblem& p);
// Training text for a teacher: one "Q: ...\nA: ... The answer is N.\n\n" document per problem.
std::string task_text(const std::vector<WordProblem>& ps);

// The number after the last "answer is" in text (nullopt when there is none).
std::optional<long> extract_answer(const std::string& text);
// Integer expression over + - * and parentheses (whitespace allowed); nullopt on any syntax error, overflow or
// trailing text. The program checker of PaD.
std::optional<long> eval_program(const std::string& program);

// Fraction of problems the model answers correctly: greedy completion of task_prompt (max_new tokens, stopped
// at the first blank line), then extract_answer.
double task_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new = 48);

}  // namespace lmp::distill

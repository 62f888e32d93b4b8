// PaD — program-aided distillation (Zhu, Qi, Zhang, Long, Chen, Qi, 2023, "PaD: Program-aided Distillation Can
// Teach Small Models Reasoning Better than Chain-of-thought Fine-tuning", arXiv 2305.13888).
// Instead of natural-language rationales the student learns to write a PROGRAM, and the answer comes from
// executing it. The teacher's data is checked by execution: PaD compiles/runs every synthesized program and drops
// the samples whose program fails or whose result disagrees with the gold answer, so the student never sees
// faulty reasoning. Here the teacher's program is the arithmetic expression of its solution's last equation
// ("3 + 2" in "... 3 + 2 = 5."), run by eval_program (kd_tasks.h). A kept example is
//   prompt "Q: ...\nA:" → " 3 + 2 =" (role program, weight 1) + " 5. The answer is 5." (role answer: the value
//   COMPUTED BY EXECUTION, never the teacher's text; weight `answer_weight`, 1 by default so the usual
//   task accuracy also reads it; 0 trains question → program only).
// At inference a PaD student is judged by executing its program: pad_accuracy.
// Settings: answer_weight (1).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// Why a teacher solution was kept or dropped.
enum class PadVerdict { Kept, NoProgram, ProgramFails, WrongAnswer };
struct PadCheck {
  PadVerdict verdict = PadVerdict::NoProgram;
  std::string program;
  long value = 0;  // the executed result (Kept / WrongAnswer)
};
// Checks one teacher solution of problem p by executing its program.
PadCheck pad_check(const std::string& teacher_text, const WordProblem& p);
// The training example of a kept program (value = its executed result).
KdExample pad_example(const std::string& prompt, const PadCheck& c, float answer_weight);
// The program the student wrote: its completion up to the first '=' (or the line end), trimmed.
std::string pad_student_program(const std::string& completion);
// Fraction of problems whose student program, executed, gives the answer.
double pad_accuracy(const Model& m, const std::vector<WordProblem>& ps, int max_new = 24);

KdResult pad_recipe(const KdContext& ctx);

}  // namespace lmp::distill

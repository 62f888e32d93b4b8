// LMTWA — the teacher explains only when it helps (Saha, Hase, Bansal, 2023, "Can Language Models Teach Weaker
// Agents? Teacher Explanations Improve Students via Personalization", NeurIPS 2023, arXiv 2306.09299).
// Explanations cost the teacher something (here: training tokens, in the paper a communication budget), so the
// teacher intervenes only where its explanation is expected to help this student most. The teacher keeps a model
// of the student and ranks problems by the EXPECTED UTILITY of an explanation: the student's gain in
// log-likelihood of the gold answer when the teacher's rationale precedes it,
//   U = log p_student(answer | question + rationale) − log p_student(answer | question)
// (ctx.student, scored by score()). The top `budget` fraction of problems by U get the teacher's full solution
// (rationale + answer); the rest get an answer-only target (the teacher's stated answer, no explanation).
// Solutions without a stated answer are dropped (nothing to teach).
// Settings: budget (0.5, fraction of problems explained).
#pragma once
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// U for one problem and one teacher solution (rationale + answer sentence).
double lmtwa_utility(const Model& student, const WordProblem& p, const std::string& rationale);
// Which of n items are explained: the ceil(budget · n) largest utilities (ties: lower index first).
std::vector<bool> lmtwa_select(const std::vector<double>& utility, double budget);
// The data from teacher solutions (one per problem, same order): explained or answer-only per lmtwa_select.
KdSet lmtwa_build(const Model& student, const std::vector<KdItem>& items, const std::vector<std::string>& solutions,
                  double budget);

KdResult lmtwa_recipe(const KdContext& ctx);

}  // namespace lmp::distill

// Selective Reflection-Tuning (Li, Chen, Chen, He, Gu, Zhou, 2024, "Selective Reflection-Tuning: Student-Selected
// Data Recycling for LLM Instruction-Tuning", Findings of ACL 2024, arXiv 2402.10110).
// Teacher and student cooperate on the data: the TEACHER reflects on each instruction/response pair and writes an
// improved version; the STUDENT decides, by its own statistics, which version it learns from. The student's
// statistic is the Instruction-Following Difficulty of Cherry-LLM (Li et al. 2023),
//   IFD(q, r) = L(r | q) / L(r)   (L = the student's mean token NLL; how little the instruction helps),
// higher = more challenging; IFD ≥ 1 means the instruction does not help at all and the pair is not kept. The
// paper's response stage uses the reversed IFD, r-IFD(q, r) = L(q | r) / L(q) (lower = the response is feasible:
// it lets the student infer the instruction) — setting select=rifd.
// Reflection here: our teacher cannot follow a "critique and improve" instruction, so it reflects by re-answering
// with its first answer in view (prompt + draft, a blank line, the prompt again → the rewritten response).
// The instruction-rewriting half of the paper is not done (the task's questions are generated, not written).
// Settings: select (ifd|rifd).
#pragma once
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

double ifd_score(const Model& student, const std::string& q, const std::string& r);
double rifd_score(const Model& student, const std::string& q, const std::string& r);
// The teacher's reflected rewrite of its draft response to prompt.
std::string reflect_response(const Model& teacher, const std::string& prompt, const std::string& draft, int max_new,
                             bool task);
// Which candidate response the student keeps: 0 = original, 1 = reflected, -1 = none (ifd: the higher IFD among
// those < 1; rifd: the lower r-IFD among those < 1). Ties keep the original.
int sr_choose(const std::vector<double>& stat, const std::string& select);
// The data from (original, reflected) responses per item, chosen by the student.
KdSet sr_build(const Model& student, const std::vector<KdItem>& items, const std::vector<std::string>& original,
               const std::vector<std::string>& reflected, const std::string& select);

KdResult selective_reflection_recipe(const KdContext& ctx);

}  // namespace lmp::distill

// DRA — tailored learning with self-reflection on the student's mistakes (Wang, Huang, Liu, Wang, Song, Zhang,
// Huang, Wei, Deng, Sun, Zhang, 2023, "Democratizing Reasoning Ability: Tailored Learning from Large Language
// Model", EMNLP 2023, arXiv 2310.13332; the survey's "DRA").
// A multi-round, interactive recipe: the student first learns from the teacher's rationales, then takes an
// "exam" on the training problems; its MISTAKES are collected and sent back to the teacher, which supplies
// correct rationales for exactly those problems (feedback tailored to this student's deficiencies); the student
// is trained on them and the loop repeats. Self-reflection: the paper has the student learn from its own wrong
// rationales as well as the teacher's right ones; here (setting reflect) each mistake also yields a reflection
// example — the student's own wrong attempt as context, followed by the teacher's correct solution — so the
// student sees its error and the correction together (the engine's cross-entropy cannot push the wrong rationale
// down; see tdig for a weighted use of flawed rationales).
//   round 0: teacher greedy solutions, kept when right → D; student ← finetune(student, D)
//   round r = 1..rounds: the student solves every problem; for each wrong one the teacher's correct rationale
//     (greedy if right, else up to `tries` samples at `temperature` until one is right) → F_r;
//     D ← D ∪ F_r; student ← finetune(student, D)
// Returns the trained student (ctx.finetune between rounds) and D. Settings: rounds (1), tries (4),
// temperature (0.7), reflect (1).
#pragma once
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// Feedback examples for one exam: for every item whose student solution is wrong and whose teacher solution is
// right, the teacher's solution as target (and, with reflect, a reflection example conditioned on the student's
// wrong attempt). The three vectors have one entry per item.
std::vector<KdExample> dra_feedback(const std::vector<KdItem>& items, const std::vector<std::string>& student,
                                    const std::vector<std::string>& teacher, bool reflect, int round);
// The reflection prompt: the question, the student's wrong attempt, and a retry marker.
std::string dra_reflection_prompt(const std::string& prompt, const std::string& wrong);

KdResult dra_recipe(const KdContext& ctx);

}  // namespace lmp::distill

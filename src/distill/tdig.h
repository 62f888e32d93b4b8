// TDIG — learning from the teacher's negative samples too (Li, Yuan, Feng, Pan, Wang, Zhang, Wang, Li, 2024,
// "Turning Dust into Gold: Distilling Complex Reasoning Capabilities from LLMs by Leveraging Negative Data",
// AAAI 2024, arXiv 2312.12832).
// Usual CoT distillation keeps only teacher samples with the right answer; TDIG argues the wrong ones ("dust")
// still carry useful reasoning. The paper trains a separate negative-assistant module on them and calibrates the
// positive training with it; the lmpress engine fits weighted target segments with cross-entropy, so the negative
// data enters as what of it is still correct: for a sample whose answer is wrong, the reasoning steps BEFORE the
// first wrong step become a target segment with its own, smaller weight `neg_weight` (no EOS is learned after
// it), while right samples are full-weight targets. A step (sentence) is wrong when its equation does not execute
// to its stated result, when it is the solution's last equation and its result is not the gold answer, or when it
// uses a number that is not in the question (other than its equation's result), or states no number at all
// (every reasoning step of this task states a quantity; a sentence without one is off-task). Error localisation is by this
// checker, not by the teacher. Several samples per problem: the greedy one plus samples-1 at temperature.
// Settings: samples (4), temperature (0.8), neg_weight (0.3; 0 drops the negatives: the usual positives-only
// filtered distillation from the same samples, the control that isolates what the negative data adds).
#pragma once
#include <string>
#include <vector>

#include "distill/kd_recipe.h"

namespace lmp::distill {

// The correct prefix of a solution of p: its sentences before the first wrong step (the whole rationale when
// no step is wrong); the answer sentence is never part of it.
std::string tdig_correct_prefix(const std::string& solution, const WordProblem& p);
// The example for one teacher sample: a positive (right answer, weight 1) or a negative prefix (weight
// neg_weight, followed by an empty weight-0 segment so EOS is not learned); nullopt for a negative with no correct
// step or when neg_weight is 0.
std::optional<KdExample> tdig_example(const KdItem& it, const std::string& solution, float neg_weight);

KdResult tdig_recipe(const KdContext& ctx);

}  // namespace lmp::distill

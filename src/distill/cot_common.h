// Shared steps of the chain-of-thought distillation recipes (cot_magister, finetune_cot, step_by_step, mt_cot,
// sslm, scott; survey Zhu et al. 2023 §5.2 "CoT distillation"). They all work on task problems whose gold answer is
// known (--task arith), ask the teacher for a worked solution ("chain of thought": a rationale ending with
// " The answer is N."), check or split it, and write weighted examples for the student.
// The teacher is seen only through a CotWriter (prompt, sampling) -> text, so each recipe's selection rule can be
// tested against a scripted teacher; teacher_writer(ctx) is the real one (ctx.teacher, ctx.max_new, stopped at
// the first blank line, as task_accuracy reads answers).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "distill/kd_recipe.h"

namespace lmp::distill {

using CotWriter = std::function<std::string(const std::string& prompt, const SamplingOptions& so)>;

// complete(*ctx.teacher, prompt, ctx.max_new, so, "\n\n"), counting calls in *calls when given.
CotWriter teacher_writer(const KdContext& ctx, long* calls = nullptr);

// The task problems of ctx; throws naming the recipe when there are none (free prompts have no answer to check).
const std::vector<WordProblem>& cot_problems(const KdContext& ctx, const char* recipe);

// The teacher's solution states the gold answer (extract_answer == p.answer).
bool cot_correct(const std::string& text, const WordProblem& p);

// A target segment's text with exactly one leading space (" Lily had ..."): kd_stream encodes prompt + segments as
// one text, so each segment carries the space that separates it from what precedes it ("A:" + " Lily").
std::string cot_segment(const std::string& text);
// The answer segment: cot_segment(answer_sentence(answer)) = " The answer is N.".
std::string answer_segment(long answer);

// The rationale of a solution as a segment: the text before its last "The answer is", trailing spaces removed,
// one leading space (cot_segment); the whole text when it states no answer.
std::string cot_rationale(const std::string& text);

// The teacher prompt with the answer given (rationalization, Li et al. 2022; SCOTT's answer-conditioned
// teacher): "Q: <question> The answer is N.\nA:".
std::string answer_given_prompt(const WordProblem& p, long answer);

// A wrong answer near the gold one (gold ± 1..3, never negative), deterministic for rng.
long perturbed_answer(long gold, uint64_t seed);

// Sampling options of the k-th sample of item i (distinct seeds per run seed, item and sample).
SamplingOptions cot_sampling(uint64_t seed, double temperature, size_t item, int k);

}  // namespace lmp::distill

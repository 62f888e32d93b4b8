// The instruction-following and in-context-learning distillation recipes (rows of kd_recipe_table()), one per
// file: self_instruct.cpp, lamini.cpp, lion.cpp, icl_distill.cpp (meta_ict, multitask_ict), aicd.cpp. The
// helpers named here are each recipe's defining step, exposed so tests can check it against an independent
// computation.
#pragma once
#include <vector>

#include <fmt/format.h>

#include "core/error.h"
#include "distill/inst_common.h"

namespace lmp::distill {

KdResult self_instruct_recipe(const KdContext& ctx);
KdResult lamini_recipe(const KdContext& ctx);
KdResult lion_recipe(const KdContext& ctx);
KdResult meta_ict_recipe(const KdContext& ctx);
KdResult multitask_ict_recipe(const KdContext& ctx);
KdResult aicd_recipe(const KdContext& ctx);

// LaMini-LM topics: the capitalised words of the pool's instructions (names, places) other than sentence
// openers such as "How"/"Then", most frequent first (ties alphabetical).
std::vector<std::string> lamini_topics(const std::vector<InstItem>& pool);

// Lion's referee: the teacher judges both answers by its own mean token log-likelihood; the gap is
// teacher-answer score − student-answer score (an empty student answer scores -100 per token).
double lion_gap(const Model& referee, const std::string& prompt, const std::string& teacher_resp,
                const std::string& student_resp);
// The hard instructions: indices of the ceil(frac · n) largest gaps (ties by lower index), ascending.
std::vector<size_t> lion_hard(const std::vector<double>& gaps, double frac);

// One in-context-tuning example (Huang et al. 2022): the k demonstrations as context with the language-modeling
// objective at weight lm (0: context only), then the query with the teacher's few-shot prediction as the target.
KdExample ict_example(const std::vector<std::pair<std::string, std::string>>& demos, const std::string& query,
                      const std::string& prediction, float lm);

}  // namespace lmp::distill

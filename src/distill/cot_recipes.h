// The chain-of-thought distillation recipes of issue 13, group 1 (one file each; rows of kd_recipe_table()):
//   cot_magister  (cot_magister.cpp)  Magister et al. 2023   teacher's greedy CoT, kept when its answer is right
//   finetune_cot  (finetune_cot.cpp)  Ho et al. 2023         K sampled CoTs per problem, right ones, deduplicated
//   step_by_step  (step_by_step.cpp)  Hsieh et al. 2023      answer and rationale as two weighted tasks
//   mt_cot        (mt_cot.cpp)        Li et al. 2022         CROP explanations, MT-CoT: answer task + CoT task
//   sslm          (sslm.cpp)          Fu et al. 2023         specialise in stages, keep the best dev-accuracy student
//   scott         (scott.cpp)         Wang et al. 2023       contrastive decoding + counterfactual training
// Each exposes the core that builds its data from a CotWriter (testable with a scripted teacher) and its run().
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "distill/cot_common.h"

namespace lmp::distill {

KdSet magister_set(const std::vector<WordProblem>& ps, const CotWriter& teacher);
KdResult cot_magister_recipe(const KdContext& ctx);

KdSet finetune_cot_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, int samples, double temperature,
                       uint64_t seed);
KdResult finetune_cot_recipe(const KdContext& ctx);

// Prompts of the two tasks: label_prefix + task prompt → answer (weight 1), rationale_prefix + task prompt →
// rationale (weight lambda).
KdSet step_by_step_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, double lambda,
                       const std::string& label_prefix, const std::string& rationale_prefix);
KdResult step_by_step_recipe(const KdContext& ctx);

KdSet mt_cot_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, double alpha,
                 const std::string& answer_prefix);
KdResult mt_cot_recipe(const KdContext& ctx);

// SSLM's stage loop: stage k fine-tunes stage k−1's student on `data`; every stage (0 = before) is evaluated;
// the student of the stage ≥ 1 with the highest dev accuracy is returned (the earliest on ties). `log` gets one
// {"stage", "dev_accuracy", "generic_ppl"} object per stage, the returned one marked "selected": true.
struct SslmEval {
  double dev_accuracy = 0, generic_ppl = 0;
};
using Finetune = std::function<std::unique_ptr<Model>(const Model& student, const KdSet& data)>;
std::unique_ptr<Model> sslm_stages(const Model& student, const KdSet& data, int stages, const Finetune& finetune,
                                   const std::function<SslmEval(const Model&)>& eval, nlohmann::json& log);
KdResult sslm_recipe(const KdContext& ctx);

// SCOTT's contrastive decoding: greedy over the plausible tokens (p(t | pos) ≥ plaus · max p(· | pos)) of
// log p(t | pos, t<i) + γ · [log p(t | pos, t<i) − log p(t | neg, t<i)], both prompts continued with the same tokens through
// their own KV caches; stops at EOS/BOS, max_new, or once the text holds a newline (a solution is one line) or
// "The answer is".
std::vector<int> contrastive_decode(const Model& m, const std::string& pos_prompt, const std::string& neg_prompt,
                                    int max_new, double gamma, double plaus);
// rationale(p, a, a') → the rationale for answer a contrasted with a'. Per problem: the factual example
// (rationale for a* → a*) and, when cf_weight > 0, the counterfactual one (rationale for a' as unscored context
// → a', weight cf_weight).
using RationaleFn = std::function<std::string(const WordProblem& p, long answer, long contrast)>;
KdSet scott_set(const std::vector<WordProblem>& ps, const RationaleFn& rationale, double cf_weight, uint64_t seed);
KdResult scott_recipe(const KdContext& ctx);

}  // namespace lmp::distill

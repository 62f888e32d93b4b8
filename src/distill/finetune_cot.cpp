// finetune_cot — Ho, Schmid, Yun 2023, "Large Language Models Are Reasoning Teachers" (Fine-tune-CoT, arXiv
// 2212.10071). Diverse reasoning: the teacher samples `samples` = K rationales per problem with temperature
// (default 0.7, the paper's), every one whose final answer is right is kept, identical ones once; the student is
// fine-tuned on all of them (several reasoning paths per question augment the small data set). Settings:
// samples (K, default 4), temperature. Stats: written (K · problems), correct, kept (after dedupe), teacher calls.
#include <set>

#include "distill/cot_recipes.h"

namespace lmp::distill {

KdSet finetune_cot_set(const std::vector<WordProblem>& ps, const CotWriter& teacher, int samples, double temperature,
                       uint64_t seed) {
  KdSet s;
  s.recipe = "finetune_cot";
  long correct = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    const std::string prompt = task_prompt(ps[i]);
    std::set<std::string> seen;
    for (int k = 0; k < samples; k++) {
      const std::string cot = teacher(prompt, cot_sampling(seed, temperature, i, k));
      if (!cot_correct(cot, ps[i])) continue;
      correct++;
      if (!seen.insert(cot).second) continue;
      KdExample e;
      e.prompt = prompt;
      e.targets.push_back({cot_segment(cot), 1.0f, "cot"});
      e.meta["sample"] = k;
      s.examples.push_back(std::move(e));
    }
  }
  const long written = long(ps.size()) * samples;
  s.stats = {{"written", written}, {"correct", correct}, {"kept", s.examples.size()}, {"teacher_calls", written}};
  return s;
}

KdResult finetune_cot_recipe(const KdContext& ctx) {
  const int samples = int(ctx.opt.integer("samples", 4));
  const double temperature = ctx.opt.real("temperature", 0.7);
  check(samples >= 1, "kd setting samples={}: want >= 1", samples);
  check(temperature > 0, "kd setting temperature={}: diverse reasoning samples, want > 0", temperature);
  const auto& ps = cot_problems(ctx, "finetune_cot");
  KdResult r;
  r.data = finetune_cot_set(ps, teacher_writer(ctx), samples, temperature, ctx.seed);
  kd_log(ctx, "finetune_cot", fmt::format("{} samples: {} right, {} distinct kept", r.data.stats["written"].dump(),
                                          r.data.stats["correct"].dump(), r.data.examples.size()));
  return r;
}

}  // namespace lmp::distill

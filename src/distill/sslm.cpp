// sslm — Fu, Peng, Ou, Sabharwal, Khot 2023, "Specializing Smaller Language Models towards Multi-Step Reasoning"
// (arXiv 2301.12726). Model specialisation: the small model's limited capacity is moved from generic ability to the
// one target task by distilling the teacher's chain-of-thought data of that task only (here the teacher's greedy
// CoTs kept when right, Magister's set). Training runs in `stages` rounds (each one ctx.finetune of the previous
// student); after each the student is scored on held-out dev problems of the task (a seed disjoint from the training
// and test problems) and the best-scoring checkpoint is kept (the paper selects checkpoints by held-out task
// accuracy, since accuracy on the target task and generic ability move apart during specialisation). When
// `generic` names a text file (tinystories docs), the per-stage perplexity on it records the generic ability the
// specialisation costs. Settings: stages (3), dev_n (100), generic (""), generic_windows (20). Stats: per stage
// dev accuracy and generic ppl (stage 0 = before), and the selected stage.
#include "distill/cot_recipes.h"

#include "core/error.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"

namespace lmp::distill {

std::unique_ptr<Model> sslm_stages(const Model& student, const KdSet& data, int stages, const Finetune& finetune,
                                   const std::function<SslmEval(const Model&)>& eval, nlohmann::json& log) {
  auto record = [&](int k, const SslmEval& e) {
    log.push_back({{"stage", k}, {"dev_accuracy", e.dev_accuracy}, {"generic_ppl", e.generic_ppl}});
  };
  record(0, eval(student));
  std::vector<std::unique_ptr<Model>> ckpt;  // every stage's student (small models: kept until the choice)
  size_t best = 0;
  double best_acc = -1;
  for (int k = 1; k <= stages; k++) {
    ckpt.push_back(finetune(ckpt.empty() ? student : *ckpt.back(), data));
    const SslmEval e = eval(*ckpt.back());
    record(k, e);
    if (e.dev_accuracy > best_acc) best_acc = e.dev_accuracy, best = ckpt.size() - 1;  // earliest wins ties
  }
  log[best + 1]["selected"] = true;
  return std::move(ckpt[best]);
}

KdResult sslm_recipe(const KdContext& ctx) {
  const int stages = int(ctx.opt.integer("stages", 3));
  const int dev_n = int(ctx.opt.integer("dev_n", 100));
  const std::string generic = ctx.opt.str("generic", "");
  const int generic_windows = int(ctx.opt.integer("generic_windows", 20));
  check(stages >= 1 && dev_n >= 1, "kd settings stages={} dev_n={}: want >= 1", stages, dev_n);
  check(ctx.finetune && ctx.student, "kd recipe 'sslm' trains the student itself in stages (run it through "
        "`lmpress train distill`)");
  const auto& ps = cot_problems(ctx, "sslm");
  KdResult r;
  r.data = magister_set(ps, teacher_writer(ctx));
  check(!r.data.examples.empty(), "kd recipe 'sslm': the teacher got none of the {} problems right", ps.size());
  const auto dev = word_problems(dev_n, ctx.seed + 2000003);
  std::vector<int> generic_ids;
  if (!generic.empty()) generic_ids = tokenize_file(ctx.student->tokenizer(), generic, TextFormat::Docs);
  PplOptions po;
  po.max_windows = generic_windows;
  po.progress = false;
  auto eval = [&](const Model& m) {
    SslmEval e;
    e.dev_accuracy = task_accuracy(m, dev);
    if (!generic_ids.empty()) e.generic_ppl = perplexity(m, generic_ids, po).ppl;
    kd_log(ctx, "sslm", fmt::format("dev accuracy {:.3f}, generic ppl {:.3f}", e.dev_accuracy, e.generic_ppl));
    return e;
  };
  nlohmann::json log = nlohmann::json::array();
  r.student = sslm_stages(*ctx.student, r.data, stages, ctx.finetune, eval, log);
  int selected = 0;
  for (const auto& s : log)
    if (s.value("selected", false)) selected = s["stage"].get<int>();
  r.data.stats["stages"] = log;
  r.data.stats["selected_stage"] = selected;
  kd_log(ctx, "sslm", fmt::format("kept stage {} of {}", selected, stages));
  return r;
}

}  // namespace lmp::distill

#include "distill/kd_recipe.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "distill/inst_recipes.h"
#include "distill/dra.h"
#include "distill/lmtwa.h"
#include "distill/pad.h"
#include "distill/selective_reflection.h"
#include "distill/socratic.h"
#include "distill/tdig.h"
#include "distill/cot_recipes.h"

namespace lmp::distill {

// ---------------------------------------------------------------------------------------------------
// Options

KdOptions::KdOptions(nlohmann::json j) : j_(std::move(j)) {
  check(j_.is_object(), "kd recipe settings must be an object of key -> value");
}

KdOptions KdOptions::parse(const std::string& s) {
  nlohmann::json j = nlohmann::json::object();
  size_t a = 0;
  while (a < s.size()) {
    size_t b = s.find(',', a);
    if (b == std::string::npos) b = s.size();
    const std::string kv = s.substr(a, b - a);
    a = b + 1;
    if (kv.empty()) continue;
    const size_t e = kv.find('=');
    check(e != std::string::npos && e > 0, "--kd-set '{}': want key=value[,key=value...]", s);
    j[kv.substr(0, e)] = kv.substr(e + 1);
  }
  return KdOptions(j);
}

static const nlohmann::json* find_key(const nlohmann::json& j, std::vector<std::string>& used, const std::string& k) {
  if (!j.contains(k)) return nullptr;
  used.push_back(k);
  return &j[k];
}

double KdOptions::real(const std::string& key, double dflt) const {
  const auto* v = find_key(j_, used_, key);
  if (!v) return dflt;
  if (v->is_number()) return v->get<double>();
  try {
    size_t n = 0;
    const double d = std::stod(v->get<std::string>(), &n);
    if (n == v->get<std::string>().size()) return d;
  } catch (...) {
  }
  fail("kd setting '{}' = {}: want a number", key, v->dump());
}

long KdOptions::integer(const std::string& key, long dflt) const {
  const double d = real(key, double(dflt));
  check(d == double(long(d)), "kd setting '{}' = {}: want an integer", key, d);
  return long(d);
}

std::string KdOptions::str(const std::string& key, const std::string& dflt) const {
  const auto* v = find_key(j_, used_, key);
  if (!v) return dflt;
  return v->is_string() ? v->get<std::string>() : v->dump();
}

void KdOptions::finish(const std::string& recipe) const {
  std::string unknown;
  for (auto it = j_.begin(); it != j_.end(); ++it)
    if (std::find(used_.begin(), used_.end(), it.key()) == used_.end())
      unknown += (unknown.empty() ? "" : ", ") + it.key();
  check(unknown.empty(), "kd recipe '{}' has no setting(s) {}", recipe, unknown);
}

// ---------------------------------------------------------------------------------------------------
// Shared steps

void kd_log(const KdContext& ctx, const std::string& recipe, const std::string& msg) {
  if (!ctx.quiet) std::fprintf(stderr, "kd %s: %s\n", recipe.c_str(), msg.c_str());
}

std::vector<KdItem> kd_pool(const KdContext& ctx) {
  std::vector<KdItem> pool;
  for (const auto& p : ctx.problems) pool.push_back({task_prompt(p), &p});
  for (const auto& p : ctx.prompts) pool.push_back({p, nullptr});
  check(!pool.empty(), "kd recipe: no prompts and no task problems (give --prompts FILE or --task arith)");
  return pool;
}

KdExample teacher_example(const KdContext& ctx, const KdItem& it, const SamplingOptions& so) {
  KdExample e;
  e.prompt = it.prompt;
  e.targets.push_back({complete(*ctx.teacher, it.prompt, ctx.max_new, so, it.problem ? "\n\n" : ""), 1.0f,
                       "response"});
  return e;
}

// The baseline recipe: plain black-box KD (the student imitates the teacher's greedy responses).
static KdResult responses_recipe(const KdContext& ctx) {
  KdResult r;
  r.data.recipe = "responses";
  for (const KdItem& it : kd_pool(ctx)) r.data.examples.push_back(teacher_example(ctx, it));
  r.data.stats["teacher_calls"] = r.data.examples.size();
  return r;
}

// ---------------------------------------------------------------------------------------------------
// The table

const std::vector<KdRecipeInfo>& kd_recipe_table() {
  static const std::vector<KdRecipeInfo> t = {
      {"responses", "instruction", "plain black-box KD: the teacher's greedy response to every prompt", responses_recipe},
      {"self_instruct", "instruction", "Self-Instruct: the teacher grows the pool (ROUGE-L-filtered) and answers it",
       self_instruct_recipe},
      {"lamini", "instruction", "LaMini-LM: large example- and topic-guided instruction set, teacher responses",
       lamini_recipe},
      {"lion", "instruction", "Lion: imitate, referee the student-teacher gap, generate hard instructions; rounds",
       lion_recipe},
      {"meta_ict", "icl", "Meta in-context tuning: few-shot prompts on some kinds, teacher predictions as targets",
       meta_ict_recipe},
      {"multitask_ict", "icl", "Multitask in-context tuning: few-shot prompts + LM loss on the demonstrations",
       multitask_ict_recipe},
      {"aicd", "icl", "AICD: loss on every in-context demonstration's teacher CoT, autoregressively", aicd_recipe},
      {"pad", "cot", "PaD: teacher programs executed, failing/wrong ones dropped; student writes the program", pad_recipe},
      {"socratic", "cot", "Socratic CoT: sub-question generator + answerer roles from decomposed solutions",
       socratic_recipe},
      {"lmtwa", "cot", "LMTWA: explain only the budget fraction where the student's answer likelihood gains most",
       lmtwa_recipe},
      {"dra", "cot", "DRA: rounds of student exam -> teacher rationales for its mistakes (+ reflection) -> finetune",
       dra_recipe},
      {"tdig", "cot", "TDIG: right teacher samples + correct prefixes of wrong ones at a smaller weight", tdig_recipe},
      {"selective_reflection", "cot", "Selective Reflection-Tuning: teacher rewrites, the student keeps by IFD",
       selective_reflection_recipe},
      {"cot_magister", "cot", "Magister 2023: teacher's greedy chain of thought, kept when its answer is right",
       cot_magister_recipe},
      {"finetune_cot", "cot", "Fine-tune-CoT (Ho 2023): samples=K sampled CoTs per problem, right ones, deduplicated",
       finetune_cot_recipe},
      {"step_by_step", "cot", "Distilling step-by-step (Hsieh 2023): answer + rationale tasks, L = L_label + lambda L_rat",
       step_by_step_recipe},
      {"mt_cot", "cot", "MT-CoT (Li 2022): CROP explanations; answer task (alpha) + CoT task (1 - alpha)", mt_cot_recipe},
      {"sslm", "cot", "Fu 2023: specialise on task CoT in stages, keep the best dev-accuracy student", sslm_recipe},
      {"scott", "cot", "SCOTT (Wang 2023): contrastive-decoded rationales + counterfactual training", scott_recipe},
  };
  return t;
}

KdResult run_kd_recipe(const std::string& name, const KdContext& ctx) {
  check(ctx.teacher, "kd recipe '{}' needs a teacher (--teacher DIR)", name);
  for (const auto& r : kd_recipe_table())
    if (name == r.name) {
      KdResult res = r.run(ctx);
      ctx.opt.finish(name);
      check(!res.data.examples.empty(), "kd recipe '{}' kept no examples (every teacher sample was filtered out); "
            "loosen its filter or give more prompts", name);
      res.data.recipe = name;
      return res;
    }
  std::string known;
  for (const auto& r : kd_recipe_table()) known += std::string(known.empty() ? "" : ", ") + r.name;
  fail("unknown --kd-recipe '{}' (known: {})", name, known);
}

}  // namespace lmp::distill

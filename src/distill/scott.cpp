// scott — Wang, Hu, Xu, Lin, Lin, Ren 2023, "SCOTT: Self-Consistent Chain-of-Thought Distillation" (arXiv
// 2305.01879). Two parts, both against rationales that do not support the answer they come with:
//  * Contrastive decoding of the teacher: the teacher is given the question AND the answer ("Q: ... The answer is
//    a*.\nA:", answer_given_prompt) and at each step picks, among the tokens it finds plausible
//    (p ≥ plaus · max p), the one maximising log p(t | q, a*, t<i) + γ · [log p(t | q, a*, t<i) − log p(t | q, a',
//    t<i)] for a perturbed answer a' ≠ a*: the teacher's own preference plus the contrast, so tokens that are likely
//    whatever the answer is (generic text) gain nothing, tokens that only fit the given answer (the steps that lead
//    to it) gain. (SCOTT adds the contrast to the teacher's log-probability; with the bare difference, every token
//    the two prompts agree on — copying the question's numbers — is a near-tie decided by noise.) Both prompts run through their own KV cache and
//    are continued with the same chosen token (Forward::tokens one step at a time, as generate() does).
//  * Counterfactual training: for each problem the teacher also writes the rationale for a' (contrasted with a*),
//    and the student sees question + that rationale (unscored context) and must answer a' (weight cf_weight):
//    the answer has to follow the rationale, not the question alone.
// Settings: gamma (1), plaus (0.1), cf_weight (1; 0 = no counterfactual examples). Stats: rationales written, kept (non-empty),
// factual / counterfactual examples, contrastive decodes (each runs the teacher on two prompts).
#include <cmath>

#include "core/error.h"
#include "distill/cot_recipes.h"
#include "model/forward.h"
#include "model/kv_cache.h"

namespace lmp::distill {

namespace {

// argmax over plausible t of a[t] + γ (a[t] − b[t]), a = logsoftmax(zp), b = logsoftmax(zn) (lowest id on ties).
int contrastive_pick(const std::vector<float>& zp, const std::vector<float>& zn, double gamma, double plaus) {
  const int V = int(zp.size());
  auto log_norm = [V](const std::vector<float>& z) {
    double mx = z[0], se = 0;
    for (int j = 1; j < V; j++) mx = std::max(mx, double(z[size_t(j)]));
    for (int j = 0; j < V; j++) se += std::exp(double(z[size_t(j)]) - mx);
    return mx + std::log(se);
  };
  const double lp = log_norm(zp), ln = log_norm(zn);
  double top = -1e300;
  for (int j = 0; j < V; j++) top = std::max(top, double(zp[size_t(j)]) - lp);
  const double floor = top + std::log(plaus);
  int best = -1;
  double best_gap = -1e300;
  for (int j = 0; j < V; j++) {
    const double a = double(zp[size_t(j)]) - lp;
    if (a < floor) continue;
    const double gap = a + gamma * (a - (double(zn[size_t(j)]) - ln));
    if (gap > best_gap) best_gap = gap, best = j;
  }
  return best;
}

}  // namespace

std::vector<int> contrastive_decode(const Model& m, const std::string& pos_prompt, const std::string& neg_prompt,
                                    int max_new, double gamma, double plaus) {
  check(plaus > 0 && plaus <= 1, "kd setting plaus={}: want in (0, 1]", plaus);
  const Tokenizer& tok = m.tokenizer();
  const std::vector<int> pp = tok.encode(pos_prompt, true), pn = tok.encode(neg_prompt, true);
  const int room = m.cfg.max_pos - int(std::max(pp.size(), pn.size()));
  const int n = std::min(max_new, room);
  std::vector<int> out;
  if (n <= 0) return out;
  KVCache cp(m.cfg, int(pp.size()) + n), cn(m.cfg, int(pn.size()) + n);
  Forward fp(m), fn(m);
  std::vector<float> zp(size_t(m.cfg.vocab)), zn(size_t(m.cfg.vocab));
  fp.tokens(pp.data(), int(pp.size()), cp, zp.data(), true);
  fn.tokens(pn.data(), int(pn.size()), cn, zn.data(), true);
  for (int i = 0; i < n; i++) {
    int t = contrastive_pick(zp, zn, gamma, plaus);
    if (t == m.cfg.bos_id || t == m.cfg.eos_id) break;
    out.push_back(t);
    const std::string text = tok.decode(out);
    if (text.find('\n') != std::string::npos || text.find("The answer is") != std::string::npos) break;
    if (i + 1 == n) break;
    fp.tokens(&t, 1, cp, zp.data(), true);
    fn.tokens(&t, 1, cn, zn.data(), true);
  }
  return out;
}

KdSet scott_set(const std::vector<WordProblem>& ps, const RationaleFn& rationale, double cf_weight, uint64_t seed) {
  KdSet s;
  s.recipe = "scott";
  long written = 0, factual = 0, counterfactual = 0;
  for (size_t i = 0; i < ps.size(); i++) {
    const WordProblem& p = ps[i];
    const long gold = p.answer, wrong = perturbed_answer(gold, seed * 1000003ull + i);
    const std::string r = cot_segment(rationale(p, gold, wrong));
    written++;
    if (!r.empty()) {
      KdExample e;
      e.prompt = task_prompt(p);
      e.targets.push_back({r, 1.0f, "rationale"});
      e.targets.push_back({answer_segment(gold), 1.0f, "answer"});
      s.examples.push_back(std::move(e));
      factual++;
    }
    if (cf_weight <= 0) continue;
    const std::string rc = cot_segment(rationale(p, wrong, gold));
    written++;
    if (rc.empty()) continue;
    KdExample e;
    e.prompt = task_prompt(p);
    e.targets.push_back({rc, 0.0f, "counterfactual_rationale"});
    e.targets.push_back({answer_segment(wrong), float(cf_weight), "counterfactual_answer"});
    e.meta = {{"gold", gold}, {"counterfactual", wrong}};
    s.examples.push_back(std::move(e));
    counterfactual++;
  }
  s.stats = {{"written", written}, {"kept", factual + counterfactual}, {"factual", factual},
             {"counterfactual", counterfactual}, {"teacher_calls", written}};
  return s;
}

KdResult scott_recipe(const KdContext& ctx) {
  const double gamma = ctx.opt.real("gamma", 1.0);
  const double plaus = ctx.opt.real("plaus", 0.1);
  const double cf_weight = ctx.opt.real("cf_weight", 1.0);
  check(plaus > 0 && plaus <= 1, "kd setting plaus={}: want in (0, 1]", plaus);
  check(gamma >= 0, "kd setting gamma={}: want >= 0", gamma);
  check(cf_weight >= 0, "kd setting cf_weight={}: want >= 0", cf_weight);
  const auto& ps = cot_problems(ctx, "scott");
  const Model& t = *ctx.teacher;
  auto rationale = [&](const WordProblem& p, long answer, long contrast) {
    const auto ids = contrastive_decode(t, answer_given_prompt(p, answer), answer_given_prompt(p, contrast),
                                        ctx.max_new, gamma, plaus);
    return cot_rationale(t.tokenizer().decode(ids));
  };
  KdResult r;
  r.data = scott_set(ps, rationale, cf_weight, ctx.seed);
  kd_log(ctx, "scott", fmt::format("{} factual + {} counterfactual examples from {} contrastive decodes",
                                   r.data.stats["factual"].dump(), r.data.stats["counterfactual"].dump(),
                                   r.data.stats["written"].dump()));
  return r;
}

}  // namespace lmp::distill

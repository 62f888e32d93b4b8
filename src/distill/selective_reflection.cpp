#include "distill/selective_reflection.h"

#include <fmt/format.h>

#include "core/error.h"
#include "core/progress.h"
#include "distill/cot2_common.h"

namespace lmp::distill {

double ifd_score(const Model& student, const std::string& q, const std::string& r) {
  const double plain = mean_nll(student, "", r);
  return plain > 0 ? mean_nll(student, q, r) / plain : 1.0;
}

double rifd_score(const Model& student, const std::string& q, const std::string& r) {
  const double plain = mean_nll(student, "", q);
  return plain > 0 ? mean_nll(student, r + "\n", q) / plain : 1.0;  // q read after r (on a new line)
}

std::string reflect_response(const Model& teacher, const std::string& prompt, const std::string& draft, int max_new,
                             bool task) {
  return complete(teacher, prompt + draft + "\n\n" + prompt, max_new, {}, task ? "\n\n" : "");
}

int sr_choose(const std::vector<double>& stat, const std::string& select) {
  int best = -1;
  for (int k = 0; k < int(stat.size()); k++) {
    if (!(stat[size_t(k)] < 1.0)) continue;
    const bool better = best < 0 || (select == "ifd" ? stat[size_t(k)] > stat[size_t(best)]
                                                     : stat[size_t(k)] < stat[size_t(best)]);
    if (better) best = k;
  }
  return best;
}

KdSet sr_build(const Model& student, const std::vector<KdItem>& items, const std::vector<std::string>& original,
               const std::vector<std::string>& reflected, const std::string& select) {
  KdSet s;
  long took_reflected = 0, dropped = 0;
  for (size_t i = 0; i < items.size(); i++) {
    const std::string* cand[2] = {&original[i], &reflected[i]};
    std::vector<double> stat;
    for (const std::string* c : cand)
      stat.push_back(c->find_first_not_of(' ') == std::string::npos ? 1.0
                     : select == "ifd" ? ifd_score(student, items[i].prompt, *c)
                                       : rifd_score(student, items[i].prompt, *c));
    const int k = sr_choose(stat, select);
    if (k < 0) {
      dropped++;
      continue;
    }
    took_reflected += k == 1;
    s.examples.push_back({items[i].prompt, {{*cand[k], 1.0f, k ? "reflected" : "original"}},
                          {{select, stat}, {"chosen", k ? "reflected" : "original"}}});
  }
  s.stats = {{"chose_reflected", took_reflected}, {"chose_original", long(s.examples.size()) - took_reflected},
             {"dropped", dropped}};
  return s;
}

KdResult selective_reflection_recipe(const KdContext& ctx) {
  const std::string select = ctx.opt.str("select", "ifd");
  check(select == "ifd" || select == "rifd", "kd setting select = '{}': want ifd or rifd", select);
  check(ctx.student, "kd recipe 'selective_reflection' needs the student (it selects the data)");
  const double t0 = now_seconds();
  const auto items = kd_pool(ctx);
  std::vector<std::string> orig, refl;
  for (const KdItem& it : items) {
    orig.push_back(teacher_example(ctx, it).targets[0].text);
    refl.push_back(reflect_response(*ctx.teacher, it.prompt, orig.back(), ctx.max_new, it.problem != nullptr));
  }
  KdResult r;
  r.data = sr_build(*ctx.student, items, orig, refl, select);
  r.data.stats.update({{"teacher_calls", 2 * items.size()}, {"written", 2 * items.size()}, {"select", select},
                       {"seconds", now_seconds() - t0}});
  kd_log(ctx, "selective_reflection",
         fmt::format("student kept {} reflected, {} original, dropped {} ({})", r.data.stats["chose_reflected"].dump(),
                     r.data.stats["chose_original"].dump(), r.data.stats["dropped"].dump(), select));
  return r;
}

}  // namespace lmp::distill

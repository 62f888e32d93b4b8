// lmpress task-data --task arith --n N [--seed S] [--what text|prompts|jsonl] -o FILE
// Writes the checkable word problems of distill/kd_tasks.h: `text` = worked solutions (to fine-tune a teacher
// that can solve them), `prompts` = one task prompt per line (its "\n" spelled as a space), `jsonl` = an
// lmpress kd-data file of the reference solutions (a gold-data baseline for the KD recipes).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/mmap_file.h"
#include "distill/kd_data.h"
#include "distill/kd_tasks.h"

namespace lmp {

int cmd_task_data(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  const std::string out = a.required("output"), task = a.str("task", "arith"), what = a.str("what", "text");
  const long n = a.integer("n", 1000);
  const uint64_t seed = uint64_t(a.integer("seed", 0));
  const bool json = a.flag("json");
  a.finish();
  check(task == "arith", "--task '{}': the only task is 'arith'", task);
  check(n > 0 && n <= 10000000, "--n {}: want 1..10000000 problems", n);
  const auto ps = distill::word_problems(int(n), seed);
  if (what == "text") {
    const std::string t = distill::task_text(ps);
    write_file_atomic(out, t.data(), t.size());
  } else if (what == "prompts") {
    std::string t;
    for (const auto& p : ps) t += "Q: " + p.question + " A:\n";
    write_file_atomic(out, t.data(), t.size());
  } else if (what == "jsonl") {
    distill::KdSet s;
    s.recipe = "reference";
    for (const auto& p : ps)
      s.examples.push_back({distill::task_prompt(p), {{distill::reference_solution(p), 1.0f, "solution"}},
                            {{"answer", p.answer}}});
    distill::save_kd_set(s, out);
  } else {
    fail("--what '{}': choose text, prompts or jsonl", what);
  }
  if (json) print_json({{"task", task}, {"n", n}, {"seed", seed}, {"what", what}, {"out", out}});
  else std::printf("task-data: %ld %s problems (seed %llu) -> %s\n", n, task.c_str(), (unsigned long long)seed, out.c_str());
  return 0;
}

}  // namespace lmp

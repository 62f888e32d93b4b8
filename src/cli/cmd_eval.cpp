// lmpress eval ppl --model DIR --data FILE --format docs|text|wikitext|c4-json --ctx N [--stride N]
//                  [--max-windows N] [--json]
// lmpress eval tasks --model DIR --tasks piqa,arc_easy,... [--data-dir D] [--limit N] [--no-bos] [--json]
#include <cstdio>
#include <sstream>

#include "calib/dist.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "eval/tasks.h"

namespace lmp {

static int eval_ppl(int argc, char** argv) {
  Args a(argc, argv, 3, {"json", "quiet", "kv-pre-rope"});
  std::string dir = a.required("model"), data = a.required("data");
  TextFormat fmt = parse_text_format(a.str("format", "text"));
  PplOptions o;
  o.ctx = int(a.integer("ctx", 512));
  o.stride = int(a.integer("stride", 0));
  o.max_windows = int(a.integer("max-windows", 0));
  o.kv = kv_options_from_args(a);
  bool json = a.flag("json");
  o.progress = !a.flag("quiet");
  a.finish();
  check(o.ctx >= 2, "--ctx {}: must be ≥ 2", o.ctx);
  auto m = load_model(dir);
  check(o.ctx <= m->cfg.max_pos, "--ctx {} exceeds the model's max_position_embeddings {}", o.ctx, m->cfg.max_pos);
  double t0 = now_seconds();
  std::vector<int> ids = tokenize_file(m->tokenizer(), data, fmt);
  double tok_s = now_seconds() - t0;
  o.progress = o.progress && dist::is_root();
  PplResult r = perplexity(*m, ids, o);
  if (!dist::is_root()) return 0;  // data parallel: rank 0 holds the ordered total and prints
  nlohmann::json j = {{"ppl", r.ppl},         {"nll", r.nll},         {"tokens", r.tokens},
                      {"windows", r.windows}, {"scored", r.scored},   {"ctx", o.ctx},
                      {"stride", o.stride > 0 ? o.stride : o.ctx},    {"format", text_format_name(fmt)},
                      {"data", data},         {"model", dir},         {"seconds", r.seconds},
                      {"tokens_per_s", r.tokens_per_s},               {"tokenize_s", tok_s},
                      {"bytes", m->n_bytes()}, {"params", m->n_params()},
                      {"linear_bits_per_weight", m->linear_bits_per_weight()},
                      {"kv_bits", o.kv.bits}, {"kv_method", o.kv.method == KVMethod::Wkv ? "wkvquant" : "kivi"}, {"kv_pre_rope", o.kv.pre_rope}, {"ranks", dist::size()}};
  if (json)
    print_json(j);
  else
    std::printf("ppl %.5f  (nll %.6f, %ld tokens, %ld windows of %d, %.0f tokens/s)\n", r.ppl, r.nll, r.tokens,
                r.windows, o.ctx, r.tokens_per_s);
  return 0;
}

// Zero-shot tasks (eval/tasks.h). --tasks all runs every task the loader knows.
static int eval_tasks(int argc, char** argv) {
  Args a(argc, argv, 3, {"json", "quiet", "no-bos"});
  std::string dir = a.required("model");
  std::string list = a.str("tasks", "all");
  std::string data_dir = a.str("data-dir", "../shared/data/tasks");
  TaskOptions o;
  o.limit = a.integer("limit", 0);
  o.add_bos = !a.flag("no-bos");
  bool json = a.flag("json");
  o.progress = !a.flag("quiet");
  a.finish();
  check(o.limit >= 0, "--limit {}: must be ≥ 0", o.limit);
  std::vector<std::string> names;
  if (list == "all") {
    names = task_names();
  } else {
    std::stringstream ss(list);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) names.push_back(t);
  }
  check(!names.empty(), "--tasks '{}': no task named", list);
  std::vector<Task> tasks;
  for (const auto& n : names) tasks.push_back(load_task(n, data_dir));  // all load errors before any work
  auto m = load_model(dir);
  nlohmann::json results = nlohmann::json::object();
  for (const auto& t : tasks) {
    TaskResult r = evaluate_task(*m, t, o);
    nlohmann::json j = {{"acc", r.acc}, {"acc_stderr", r.acc_stderr}, {"n", r.n}, {"examples", t.lines},
                        {"skipped", t.skipped}, {"seconds", r.seconds}, {"tokens", r.tokens}};
    if (r.has_acc_norm) j["acc_norm"] = r.acc_norm, j["acc_norm_stderr"] = r.acc_norm_stderr;
    if (r.has_ppl) j["ppl"] = r.ppl;
    if (!t.note.empty()) j["note"] = t.note;
    results[t.name] = j;
    if (!json) {
      std::string line = fmt::format("{:<16} n {:5}  acc {:.4f} ± {:.4f}", t.name, r.n, r.acc, r.acc_stderr);
      if (r.has_acc_norm) line += fmt::format("  acc_norm {:.4f} ± {:.4f}", r.acc_norm, r.acc_norm_stderr);
      if (r.has_ppl) line += fmt::format("  ppl {:.3f}", r.ppl);
      std::printf("%s  (%.1f s)\n", line.c_str(), r.seconds);
    }
  }
  if (json)
    print_json({{"model", dir}, {"tasks", results}, {"limit", o.limit}, {"bos", o.add_bos},
                {"bytes", m->n_bytes()}, {"params", m->n_params()},
                {"linear_bits_per_weight", m->linear_bits_per_weight()}});
  return 0;
}

int cmd_eval(int argc, char** argv) {
  check(argc >= 3, "eval: give a sub-command (lmpress eval ppl ...)");
  std::string sub = argv[2];
  if (sub == "ppl") return eval_ppl(argc, argv);
  if (sub == "tasks") return eval_tasks(argc, argv);
  fail("eval: unknown sub-command '{}' (have: ppl, tasks)", sub);
}

}  // namespace lmp

// lmpress eval ppl --model DIR --data FILE --format docs|text|wikitext|c4-json --ctx N [--stride N]
//                  [--max-windows N] [--json]
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"

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
  PplResult r = perplexity(*m, ids, o);
  nlohmann::json j = {{"ppl", r.ppl},         {"nll", r.nll},         {"tokens", r.tokens},
                      {"windows", r.windows}, {"scored", r.scored},   {"ctx", o.ctx},
                      {"stride", o.stride > 0 ? o.stride : o.ctx},    {"format", text_format_name(fmt)},
                      {"data", data},         {"model", dir},         {"seconds", r.seconds},
                      {"tokens_per_s", r.tokens_per_s},               {"tokenize_s", tok_s},
                      {"bytes", m->n_bytes()}, {"params", m->n_params()},
                      {"linear_bits_per_weight", m->linear_bits_per_weight()},
                      {"kv_bits", o.kv.bits}, {"kv_pre_rope", o.kv.pre_rope}};
  if (json)
    print_json(j);
  else
    std::printf("ppl %.5f  (nll %.6f, %ld tokens, %ld windows of %d, %.0f tokens/s)\n", r.ppl, r.nll, r.tokens,
                r.windows, o.ctx, r.tokens_per_s);
  return 0;
}

int cmd_eval(int argc, char** argv) {
  check(argc >= 3, "eval: give a sub-command (lmpress eval ppl ...)");
  std::string sub = argv[2];
  if (sub == "ppl") return eval_ppl(argc, argv);
  fail("eval: unknown sub-command '{}' (have: ppl)", sub);
}

}  // namespace lmp

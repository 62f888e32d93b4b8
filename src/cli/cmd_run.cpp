// lmpress run --model DIR --recipe R.json -o OUT --eval FILE [--eval-format docs] [--ctx 512] [--json]
// The main job: compress a model with a recipe, then measure both models the same way and print the
// before/after table (bytes, bits per weight, perplexity, decode and prefill tokens/s).
#include <cstdio>

#include "calib/dist.h"
#include "cli/commands.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "model/forward.h"

namespace lmp {

namespace {

struct Measure {
  size_t bytes;
  double bpw, ppl, decode_tps, prefill_tps;
};

// Decode tokens/s after a short context, and prefill tokens/s over one window (best of 3).
std::pair<double, double> speed(const Model& m, int ctx) {
  Forward fw(m);
  std::vector<int> ids(static_cast<size_t>(ctx));
  for (int i = 0; i < ctx; i++) ids[size_t(i)] = 3 + (i * 7919) % (m.cfg.vocab - 3);
  std::vector<float> logits(static_cast<size_t>(m.cfg.vocab));
  double pre = 1e30, dec = 1e30;
  const int ndec = 64, pctx = std::min(ctx, m.cfg.max_pos - ndec);
  for (int r = 0; r < 3; r++) {
    KVCache c(m.cfg, ctx);
    double t0 = now_seconds();
    fw.tokens(ids.data(), ctx, c, logits.data(), true);
    pre = std::min(pre, now_seconds() - t0);
    KVCache d(m.cfg, pctx + ndec);
    fw.tokens(ids.data(), pctx, d, logits.data(), true);
    t0 = now_seconds();
    for (int i = 0; i < ndec; i++) fw.tokens(&ids[size_t(i)], 1, d, logits.data(), true);
    dec = std::min(dec, now_seconds() - t0);
  }
  return {ndec / dec, ctx / pre};
}

Measure measure(const Model& m, const std::vector<int>& ids, int ctx) {
  PplOptions o;
  o.ctx = ctx;
  o.progress = false;
  PplResult r = perplexity(m, ids, o);
  auto [dec, pre] = speed(m, std::min(ctx, m.cfg.max_pos));
  return {m.n_bytes(), m.linear_bits_per_weight(), r.ppl, dec, pre};
}

nlohmann::json to_json(const Measure& x) {
  return {{"bytes", x.bytes}, {"linear_bits_per_weight", x.bpw}, {"ppl", x.ppl},
          {"decode_tokens_per_s", x.decode_tps}, {"prefill_tokens_per_s", x.prefill_tps}};
}

}  // namespace

int cmd_run(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  std::string dir = a.required("model"), recipe_path = a.required("recipe"), out = a.required("output");
  std::string eval = a.required("eval");
  TextFormat fmt = parse_text_format(a.str("eval-format", "docs"));
  int ctx = int(a.integer("ctx", 512));
  bool json = a.flag("json");
  a.finish();
  check(dist::size() == 1, "run: not data-parallel; run it without mpirun (compress/quantize/prune/factorize and eval ppl are)");
  Recipe recipe = load_recipe_file(recipe_path);
  auto m = load_model(dir);
  ctx = std::min(ctx, m->cfg.max_pos);
  std::vector<int> ids = tokenize_file(m->tokenizer(), eval, fmt);
  std::fprintf(stderr, "measuring %s ...\n", dir.c_str());
  Measure before = measure(*m, ids, ctx);
  CompressReport rep = run_recipe(*m, recipe, true);
  save_model(*m, out);
  auto c = load_model(out);  // measure what was written, as a user would load it
  std::fprintf(stderr, "measuring %s ...\n", out.c_str());
  Measure after = measure(*c, ids, ctx);
  if (json) {
    print_json({{"model", dir}, {"output", out}, {"recipe", recipe.json}, {"eval", eval}, {"ctx", ctx},
                {"compress_seconds", rep.seconds}, {"before", to_json(before)}, {"after", to_json(after)}});
    return 0;
  }
  std::printf("%-10s %12s %10s %10s %14s %15s\n", "", "bytes", "bits/w", "ppl", "decode tok/s", "prefill tok/s");
  auto row = [](const char* n, const Measure& x) {
    std::printf("%-10s %12zu %10.3f %10.4f %14.1f %15.1f\n", n, x.bytes, x.bpw, x.ppl, x.decode_tps, x.prefill_tps);
  };
  row("before", before);
  row("after", after);
  std::printf("(bits/w over the projections; ppl on %s, %s protocol, ctx %d; compressed in %.1f s -> %s)\n",
              eval.c_str(), text_format_name(fmt), ctx, rep.seconds, out.c_str());
  return 0;
}

}  // namespace lmp

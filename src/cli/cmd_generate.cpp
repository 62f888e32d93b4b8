// lmpress generate --model DIR [--prompt S] [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]
//                  [--seed S] [--json]. No prompt = BOS alone; the text goes to stdout, speed to stderr.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/kv_cache.h"

namespace lmp {

int cmd_generate(int argc, char** argv) {
  Args a(argc, argv, 2, {"json", "kv-pre-rope"});
  std::string dir = a.required("model");
  std::string prompt = a.str("prompt", "");
  int max_new = int(a.integer("max-new-tokens", 256));
  SamplingOptions so;
  so.temperature = float(a.real("temperature", 0.8));
  so.top_k = int(a.integer("top-k", 0));
  so.top_p = float(a.real("top-p", 0.95));
  so.seed = uint64_t(a.integer("seed", 0));
  KVQuantOptions kv = kv_options_from_args(a);
  bool json = a.flag("json");
  a.finish();
  check(max_new >= 0, "--max-new-tokens {}: must be ≥ 0", max_new);
  check(so.temperature >= 0, "--temperature {}: must be ≥ 0", so.temperature);
  check(so.top_p > 0 && so.top_p <= 1, "--top-p {}: must be in (0, 1]", so.top_p);
  auto m = load_model(dir);
  const Tokenizer& tok = m->tokenizer();
  std::vector<int> ids = prompt.empty() ? std::vector<int>{m->cfg.bos_id} : tok.encode(prompt, true);
  std::string text = prompt;
  int prev = ids.back();
  if (!json) {
    std::fputs(prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  auto r = generate(*m, ids, max_new, so, [&](int id) {
    std::string piece = tok.decode_piece(prev, id);
    prev = id;
    text += piece;
    if (!json) {
      std::fputs(piece.c_str(), stdout);
      std::fflush(stdout);
    }
  }, &kv);
  double tps = r.ids.size() > 1 ? double(r.ids.size()) / r.decode_s : 0;
  if (json) {
    print_json({{"text", text}, {"ids", r.ids}, {"prompt_tokens", ids.size()}, {"generated", r.ids.size()},
                {"prefill_s", r.prefill_s}, {"decode_tokens_per_s", tps}});
  } else {
    std::printf("\n");
    std::fprintf(stderr, "[%zu tokens, %.1f tokens/s]\n", r.ids.size(), tps);
  }
  return 0;
}

}  // namespace lmp

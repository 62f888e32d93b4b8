// lmpress — make LLMs smaller and faster, and prove it. Entry point: dispatches to a sub-command.
// Any lmp::Error (bad file, bad option) prints one line "lmpress: error: ..." and exits with status 2.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include "calib/dist.h"
#include "cli/commands.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "distill/kd_recipe.h"

namespace {

struct Command {
  const char* name;
  const char* usage;
  int (*run)(int argc, char** argv);
};

const Command kCommands[] = {
    {"run", "run --model DIR --recipe R.json -o OUT --eval FILE [--eval-format docs] [--ctx N]   compress + before/after table",
     lmp::cmd_run},
    {"synth", "synth --shape small|tinyllama-1.1b|llama2-7b|llama3-8b --seed S [--dtype f32|f16] [--layers N] -o OUT"
              "   random-weight model of real shapes (for speed)", lmp::cmd_synth},
    {"inspect", "inspect DIR [--json]                     architecture, parameters, bytes, per-tensor table",
     lmp::cmd_inspect},
    {"generate", "generate --model DIR [--prompt S] [--max-new-tokens N] [--temperature T --top-k K --top-p P --seed S]",
     lmp::cmd_generate},
    {"eval", "eval ppl --model DIR --data FILE --format docs|text|wikitext|c4-json --ctx N [--stride N] [--json]\n"
             "  lmpress eval tasks --model DIR --tasks piqa,arc_easy,...|all [--data-dir D] [--limit N] [--json]",
     lmp::cmd_eval},
    {"bench", "bench --model DIR [--kv-bits B] [--kv-method kivi|wkvquant] [--json]   prefill/decode tokens/s, peak RSS, bytes\n"
              "  lmpress bench matvec --rows R --cols C --format f32|f16|int4_g128_asym|q4_K|... [--n N] [--cold] [--json]",
     lmp::cmd_bench},
    {"compress", "compress --model DIR --recipe R.json -o OUT [--json]", lmp::cmd_compress},
    {"quantize", "quantize --model DIR --method rtn|gptq|awq|f16|w8a8|smoothquant|llm_int8|fp8|fp4 --bits B --group G "
                 "[--sym] [--act-order] [--alpha A] [--calib FILE --calib-format docs|text --nsamples N --seqlen L] -o OUT",
     lmp::cmd_quantize},
    {"quantize", "quantize --model DIR --method rtn|gptq --bits B --group G [--sym] [--act-order] [--calib FILE "
                 "--calib-format docs|text --nsamples N --seqlen L] -o OUT", lmp::cmd_quantize},
    {"roofline", "roofline [--model DIR] [--stream-mib N] [--reps N] [--json]  bandwidth, peak FLOP/s, model vs roof",
     lmp::cmd_roofline},
    {"report", "report RUN_OR_MODEL... -o report.html [--png-dir D] [--title T]  one self-contained page with plots",
     lmp::cmd_report},
    {"compare", "compare --model A --model-b B [--prompts FILE] [--max-new-tokens N] [--json]  greedy outputs, KL(A||B)",
     lmp::cmd_compare},
    {"factorize", "factorize --model DIR --method svd|asvd|laser|lplr --ratio R [--alpha A] [--allocate] [--bits B] "
                  "[--calib FILE ...] -o OUT   low-rank factors", lmp::cmd_factorize},
    {"prune", "prune --model DIR --method magnitude|wanda|sparsegpt|dsnot|esparse|samsp|gum|flap|slicegpt|depth --sparsity P [--nm 2:4] [--owl] [--bits 4] "
              "[--values f32|f16] --calib FILE ... -o OUT", lmp::cmd_prune},
    {"export", "export --model DIR --format gguf|gptq -o OUT [--type auto|f32|f16|q8_0|q4_0|q4_k] [--strict] [--json]",
     lmp::cmd_export},
    {"search", "search --model DIR --budget 3.5bpw [--method rtn|gptq] [--candidates 2,3,4,8] [--groups 32,128] --calib FILE "
               "[--nsamples 4 --seqlen 256] [--eval FILE --max-windows N] -o OUT   budgeted per-Linear bits/group", lmp::cmd_search},
    {"train", "train lora|qlora|peqa|qat|distill|full|pretrain|l4q|loraprune --model DIR [--teacher T] --data FILE --format docs|text --steps N "
              "[--lr] [--rank] [--bits] [--seqlen] [--batch] [--loss ce|fkl|rkl|jsd|cakld] [--contrastive W --tau T] "
              "[--sparsity P] [--precision bf16|f16] [--optim adamw|lion] [--init normal|scaled|small] [--grow-from D --grow depth:Kx|width:H] [--init truncate-first|truncate-alternate|random --student-layers K] [--resume CKPT] -o OUT\n"
              "  lmpress train distill --teacher T --student S --kd-recipe NAME [--prompts FILE] [--task arith --task-n N] "
              "[--kd-set k=v,...] [--kd-out D.jsonl] [--task-eval N [--task-eval-shots K]] -o OUT   black-box KD", lmp::cmd_train},
    {"task-data", "task-data --task arith --n N [--seed S] [--what text|prompts|jsonl] -o FILE   checkable task "
                  "problems (teacher training text, prompts)", lmp::cmd_task_data},
};

void usage() {
  std::fprintf(stderr, "usage: lmpress <command> [options]\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(stderr, "  lmpress %s\n", c.usage);
  // The recipe modifiers, from the one table that builds them (compress/recipe.cpp).
  std::fprintf(stderr, "recipe modifiers (stage \"modifier\"; quantize/prune/factorize --method):\n");
  for (const auto& m : lmp::modifier_table()) std::fprintf(stderr, "  %-12s %-13s %s\n", m.name, m.family, m.description);
  std::fprintf(stderr, "  %-12s %-13s %s\n", "train", "training", "any `lmpress train` run on the model so far "
               "({\"modifier\": \"train\", \"mode\": \"qat\", \"bits\": 3, ...})");
  std::fprintf(stderr, "black-box KD recipes (train distill --kd-recipe NAME):\n");
  for (const auto& r : lmp::distill::kd_recipe_table())
    std::fprintf(stderr, "  %-12s %-13s %s\n", r.name, r.family, r.description);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  // Under mpirun (an -DLMP_MPI=ON build) every rank runs the command data-parallel (calib/dist.h). A rank
  // that fails ends all ranks (MPI_Abort) after printing its message: nothing is half-written, since only
  // rank 0 saves, atomically, after every rank is done.
  lmp::dist::init(&argc, &argv);
  lmp::register_model_stage("train", lmp::train_stage);
  auto fail_all = [](const char* msg) {
    if (lmp::dist::size() > 1) lmp::dist::abort(msg);
    std::fprintf(stderr, "lmpress: error: %s\n", msg);
    return 2;
  };
  for (const auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      int rc = c.run(argc, argv);
      lmp::dist::finalize();
      return rc;
    } catch (const lmp::Error& e) {
      return fail_all(e.what());
    } catch (const std::bad_alloc&) {
      return fail_all("out of memory");
    } catch (const std::exception& e) {
      return fail_all(e.what());
    }
  }
  std::fprintf(stderr, "lmpress: error: unknown command '%s' (lmpress --help lists them)\n", argv[1]);
  return 2;
}

// lmpress prune --model DIR --method magnitude|wanda|sparsegpt|dsnot|esparse|samsp|gum --sparsity 0.5 [--nm 2:4] [--owl
//               [--owl-lambda 0.08] [--owl-m 5]] [--bits 4 [--group 128] [--sym]] (sparsegpt: joint quantization)
//               [--values f32|f16] [--sparse-min 0.3] [--scope matrix|row] (magnitude) [--initial wanda|
//               sparsegpt|magnitude] (dsnot) [--alpha 1 --bins 128
//               --block 64 --no-shuffle] (esparse, N:M only) [--delta 0.1 --mask row|block] (samsp)
//               [--damp 0.01] --calib FILE --calib-format docs|text --nsamples N
//               --seqlen L [--targets RE] [--ignore RE] -o OUT [--json] [--print-recipe]
// gum: --sparsity is the fraction of MLP neurons removed per layer (a smaller dense model, prune/gum.h).
// Builds a one-stage recipe (prune/prune_modifier.h lists the arguments) and runs it like `compress`. The stage
// records how matrices are stored: N:M → the N:M format; unstructured → sparse (bitmap) at sparsity ≥
// sparse_min, else dense f32 with zeros; each layer's choice is printed on stderr.
#include <cstdio>

#include "cli/commands.h"
#include "compress/recipe.h"
#include "core/error.h"

namespace lmp {

int cmd_prune(int argc, char** argv) {
  // Structured methods remove whole blocks, heads, channels or dimensions: a whole-model pass of their own.
  for (int i = 2; i + 1 < argc; i++)
    if (std::string(argv[i]) == "--method" &&
        (std::string(argv[i + 1]) == "depth" || std::string(argv[i + 1]) == "flap" || std::string(argv[i + 1]) == "slicegpt"))
      return cmd_prune_structured(argc, argv);
  Args a(argc, argv, 2, {"json", "owl", "sym", "print-recipe", "no-shuffle"});
  std::string dir = a.required("model"), out = a.required("output");
  std::string method = a.str("method", "wanda");
  check(method == "magnitude" || method == "wanda" || method == "sparsegpt" || method == "dsnot" || method == "esparse" ||
            method == "samsp" || method == "gum",
        "--method {}: want magnitude, wanda, sparsegpt, dsnot, esparse, samsp, gum, flap, slicegpt or depth", method);
  nlohmann::json stage = {{"modifier", method},
                          {"values", a.str("values", "f32")},
                          {"sparse_min", a.real("sparse-min", 0.3)},
                          {"storage", "N:M → N:M format; unstructured → sparse bitmap when sparsity ≥ sparse_min, "
                                      "else dense f32 with zeros"}};
  if (auto nm = a.opt("nm")) {
    stage["nm"] = *nm;
  } else {
    stage["sparsity"] = a.real("sparsity", 0.5);
  }
  if (a.flag("owl")) stage["owl"] = true;
  if (a.opt("owl-lambda")) stage["owl_lambda"] = a.real("owl-lambda", 0.08);
  if (a.opt("owl-m")) stage["owl_m"] = a.real("owl-m", 5);
  if (a.opt("bits")) {
    check(method == "sparsegpt", "--bits: joint quantization is SparseGPT's (--method sparsegpt)");
    stage["bits"] = a.integer("bits", 4);
    stage["group"] = a.integer("group", 128);
    stage["sym"] = a.flag("sym");
  }
  if (a.opt("damp")) stage["damp"] = a.real("damp", 0.01);
  if (auto s = a.opt("scope")) stage["scope"] = *s;
  if (auto i = a.opt("initial")) stage["initial"] = *i;
  if (a.opt("alpha")) stage["alpha"] = a.real("alpha", 1.0);
  if (a.opt("bins")) stage["bins"] = a.integer("bins", 128);
  if (a.opt("block")) stage["block"] = a.integer("block", 64);
  if (a.opt("delta")) stage["delta"] = a.real("delta", 0.1);
  if (auto mk = a.opt("mask")) stage["mask"] = *mk;
  if (a.flag("no-shuffle")) stage["shuffle"] = false;
  targets_from_args(a, stage);
  nlohmann::json rj = {{"stages", {stage}}, {"calibration", calibration_from_args(a)}};
  bool json = a.flag("json"), print = a.flag("print-recipe");
  a.finish();
  Recipe r = parse_recipe(rj, "prune");
  make_modifier(stage);  // validates arguments before any loading
  if (print) std::fprintf(stderr, "%s\n", rj.dump(2).c_str());
  return run_and_save(dir, r, out, json);
}

}  // namespace lmp

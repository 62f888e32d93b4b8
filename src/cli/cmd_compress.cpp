// lmpress compress --model DIR --recipe R.json -o OUT [--json]
// lmpress quantize --model DIR --method rtn|gptq|... --bits B --group G [--sym] [--mse] [--act-order]
//                  [--damp 0.01] [--calib FILE --calib-format docs|text --nsamples N --seqlen L [--seed S]]
//                  [--targets RE] [--ignore RE] -o OUT [--json]
//   weight-activation methods: --method w8a8|smoothquant|llm_int8 (int8 weights, per-row unless --group;
//   --alpha A [--alpha-search] for smoothquant, --outlier-threshold T | --outlier-frac F for llm_int8),
//   --method fp8 [--fp e4m3|e5m2] | fp4 (group scales, --group G)
//   --method squeezellm [--sparse-frac F] | bcq (--bits = bit-planes; per-row tables unless --group)
//   --method owq [--weak-frac F] (GPTQ flags apply to the rest)
//   --method spqr [--outlier-threshold T] (--group defaults to 16; T relative, 0 = no outliers, default 0.2)
//   --method quip [--rht-seed S] [--input-only] (randomized Hadamard incoherence, then the GPTQ flags on W')
//   --method onebit [--hessian-iters N] (sign bits + f16 row/column scales from SVID, optionally refined on
//   the calibration Hessian; --bits/--group do not apply)
//   --method omniquant [--epochs E] [--lr LR] [--batch B] [--let] | signround [--iters N] [--lr LR] [--batch B]
//   [--no-minmax] (block-wise reconstruction; asymmetric grid)
//   --method quantease [--iters N] [--init gptq|rtn] [--outlier-frac F] (GPTQ-initialised coordinate descent)
//   --method os_plus [--group G] (Outlier Suppression+ shift/scale, then W8A8)
//   --method zeroquant_fp [--fp e2m1|e4m3] --group G [--act e4m3|none] [--scales pow2|free]
//   --lorc-rank K [--lorc-dtype f16|f32]: ZeroQuant-V2 LoRC around any weight-only method (quant/lorc.h)
//   --norm-tweak [--tweak-steps N --tweak-lr LR --tweak-samples N --tweak-loss kl|mse]: Norm Tweaking around it
//   --method fptq [--lae-threshold T] (W4A8) | mofq (int vs fp per Linear, --bits 4|8)
//   --method wkvquant [--bits KV bits] [--cross-blocks N]: KV smoothing for --kv-method wkvquant
// Shortcuts build a recipe (printed with --print-recipe) and run it like `compress` does.
#include <cstdio>

#include "calib/dist.h"
#include "cli/commands.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "core/progress.h"

namespace lmp {

// Calibration options common to every shortcut; absent --calib means none.
nlohmann::json calibration_from_args(const Args& a) {
  auto path = a.opt("calib");
  std::string fmt = a.str("calib-format", "text");
  long n = a.integer("nsamples", 128), L = a.integer("seqlen", 2048), seed = a.integer("seed", -1);
  if (!path) return nullptr;
  parse_text_format(fmt);
  check(n >= 1, "--nsamples {}: must be ≥ 1", n);
  check(L >= 2, "--seqlen {}: must be ≥ 2", L);
  return {{"path", *path}, {"format", fmt}, {"nsamples", n}, {"seqlen", L}, {"seed", seed}};
}

// Targets/ignore flags common to every shortcut.
void targets_from_args(const Args& a, nlohmann::json& stage) {
  if (auto t = a.opt("targets")) stage["targets"] = *t;
  if (auto i = a.opt("ignore")) stage["ignore"] = *i;
}

int run_and_save(const std::string& model_dir, const Recipe& recipe, const std::string& out, bool json) {
  auto m = load_model(model_dir);
  size_t bytes_before = m->n_bytes();
  double bpw_before = m->linear_bits_per_weight();
  CompressReport rep = run_recipe(*m, recipe, dist::is_root());
  // Data parallel: every rank holds the same (checksummed) model; rank 0 alone writes it (tmp + rename)
  // while the others wait, and only rank 0 reports.
  if (dist::is_root()) save_model(*m, out);
  dist::barrier();
  if (!dist::is_root()) return 0;
  nlohmann::json j = {{"model", model_dir},
                      {"output", out},
                      {"recipe", recipe.json},
                      {"seconds", rep.seconds},
                      {"calibration_samples", rep.nsamples},
                      {"calibration_seqlen", rep.seqlen},
                      {"peak_rss_bytes", peak_rss_bytes()},
                      {"ranks", dist::size()},
                      {"bytes_before", bytes_before},
                      {"bytes", m->n_bytes()},
                      {"params", m->n_params()},
                      {"linear_bits_per_weight_before", bpw_before},
                      {"linear_bits_per_weight", m->linear_bits_per_weight()}};
  if (json) {
    print_json(j);
  } else {
    std::printf("wrote %s: %zu -> %zu bytes, projections %.3f -> %.3f bits/weight, %.1f s\n", out.c_str(),
                bytes_before, m->n_bytes(), bpw_before, m->linear_bits_per_weight(), rep.seconds);
  }
  return 0;
}

int cmd_compress(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  std::string dir = a.required("model"), recipe = a.required("recipe"), out = a.required("output");
  bool json = a.flag("json");
  a.finish();
  return run_and_save(dir, load_recipe_file(recipe), out, json);
}

int cmd_quantize(int argc, char** argv) {
  Args a(argc, argv, 2, {"json", "sym", "mse", "act-order", "print-recipe", "alpha-search", "lm-head", "input-only",
                         "let", "no-minmax", "norm-tweak"});
  std::string dir = a.required("model"), out = a.required("output");
  std::string method = a.str("method", "rtn");
  // int8 × int8 methods: 8-bit weights, one scale per output row unless --group says otherwise.
  const bool w8 = method == "w8a8" || method == "smoothquant" || method == "llm_int8" || method == "os_plus";
  nlohmann::json stage = {{"modifier", method},
                          {"bits", a.integer("bits", w8 ? 8 : 4)},
                          {"group", a.integer("group", w8 ? 0 : 128)},
                          {"sym", a.flag("sym")},
                          {"mse", a.flag("mse")}};
  if (a.flag("act-order")) stage["act_order"] = true;
  if (a.flag("lm-head")) stage["lm_head"] = true;
  if (auto d = a.opt("damp")) stage["damp"] = a.real("damp", 0.01);
  if (auto al = a.opt("alpha")) stage["alpha"] = a.real("alpha", 0.5);
  if (auto ab = a.opt("act-bits")) stage["act_bits"] = a.integer("act-bits", 8);
  if (a.flag("alpha-search")) stage["alpha_search"] = true;
  if (auto t = a.opt("outlier-threshold")) stage["threshold"] = a.real("outlier-threshold", 6.0);
  if (auto f = a.opt("outlier-frac")) stage["outlier_frac"] = a.real("outlier-frac", 0.0);
  if (auto f = a.opt("fp")) stage["fp"] = *f;
  if (auto f = a.opt("sparse-frac")) stage["sparse_frac"] = a.real("sparse-frac", 0.0);   // squeezellm
  if (auto f = a.opt("weak-frac")) stage["weak_frac"] = a.real("weak-frac", 0.01);        // owq
  if (auto f = a.opt("rht-seed")) stage["seed"] = a.integer("rht-seed", 0);              // quip
  if (a.flag("input-only")) stage["output_transform"] = false;                             // quip: U = I
  if (method == "onebit") {  // 1 bit, its own scales; --hessian-iters N refines them on calibration data
    nlohmann::json ob = {{"modifier", method}};
    if (stage.contains("damp")) ob["damp"] = stage["damp"];
    stage = ob;
    if (auto h = a.opt("hessian-iters")) stage["hessian_iters"] = a.integer("hessian-iters", 0);
  }
  if (auto e = a.opt("epochs")) stage["epochs"] = a.integer("epochs", 20);                 // omniquant
  if (auto n = a.opt("iters")) stage["iters"] = a.integer("iters", 200);                   // signround, quantease
  if (auto l = a.opt("lr")) stage["lr"] = a.real("lr", 0.01);
  if (auto b = a.opt("batch")) stage["batch"] = a.integer("batch", 8);
  if (a.flag("let")) stage["let"] = true;
  if (a.flag("no-minmax")) stage["minmax"] = false;
  if (auto f = a.opt("init")) stage["init"] = *f;                                          // quantease
  if (auto f = a.opt("act")) stage["act"] = *f;                                            // zeroquant_fp
  if (auto f = a.opt("scales")) stage["scales"] = *f;                                      // zeroquant_fp
  if (auto f = a.opt("lae-threshold")) stage["lae_threshold"] = a.real("lae-threshold", 15.0);  // fptq
  if (auto f = a.opt("cross-blocks")) stage["cross_blocks"] = a.integer("cross-blocks", 1);     // wkvquant
  // bcq/squeezellm: per-row tables unless --group is given
  if ((method == "bcq" || method == "squeezellm") && !a.opt("group")) stage["group"] = 0;
  if (method == "spqr" && !a.opt("group")) stage["group"] = 16;  // SpQR's small first-level groups
  if (method == "spqr" && !a.opt("bits")) stage["bits"] = 3;
  targets_from_args(a, stage);
  if (auto k = a.opt("lorc-rank"))
    stage = {{"modifier", "lorc"}, {"rank", a.integer("lorc-rank", 8)}, {"factor_dtype", a.str("lorc-dtype", "f16")},
             {"quantizer", stage}};
  if (a.flag("norm-tweak"))
    stage = {{"modifier", "norm_tweak"},
             {"steps", a.integer("tweak-steps", 10)},
             {"lr", a.real("tweak-lr", 1e-3)},
             {"nsamples", a.integer("tweak-samples", 16)},
             {"loss", a.str("tweak-loss", "kl")},
             {"quantizer", stage}};
  nlohmann::json rj = {{"stages", {stage}}, {"calibration", calibration_from_args(a)}};
  bool json = a.flag("json"), print = a.flag("print-recipe");
  a.finish();
  Recipe r = parse_recipe(rj, "quantize");
  make_modifier(stage);  // validates arguments before any loading
  if (print) std::fprintf(stderr, "%s\n", rj.dump(2).c_str());
  return run_and_save(dir, r, out, json);
}

}  // namespace lmp

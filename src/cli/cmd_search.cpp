// lmpress search --model DIR --budget 3.5bpw [--method rtn|gptq] [--candidates 2,3,4,8] [--groups 32,128]
//                --calib FILE [--calib-format docs] [--nsamples 4] [--seqlen 256] -o OUT
//                [--eval FILE --eval-format docs --ctx 512 --max-windows N] [--json]
// Budgeted per-Linear choice of bits × group (search/budget_search.h): RTN sensitivities (output KL) of each
// Linear alone, an exact knapsack under the byte budget, then the winning recipe run for real (--method),
// saved, reloaded and checked: the reloaded model's projection bits/weight must be ≤ the budget.
#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "search/budget_search.h"

namespace lmp {

namespace {

std::vector<int> int_list(const std::string& s, const char* opt) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int x = std::stoi(item, &used);
      check(used == item.size(), "");
      v.push_back(x);
    } catch (...) {
      fail("--{} '{}': expected a comma-separated list of integers", opt, s);
    }
  }
  check(!v.empty(), "--{}: empty list", opt);
  return v;
}

double parse_budget(std::string s) {
  if (s.size() > 3 && s.substr(s.size() - 3) == "bpw") s.resize(s.size() - 3);
  try {
    size_t used = 0;
    double b = std::stod(s, &used);
    if (used == s.size() && b > 0) return b;
  } catch (...) {
  }
  fail("--budget '{}': expected bits per weight over the projections, e.g. 3.5bpw", s);
}

}  // namespace

int cmd_search(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  std::string dir = a.required("model"), out = a.required("output");
  const double budget_bpw = parse_budget(a.required("budget"));
  const std::string method = a.str("method", "rtn");
  check(method == "rtn" || method == "gptq", "--method '{}': search supports rtn|gptq", method);
  auto cands = candidate_grid(int_list(a.str("candidates", "2,3,4,8"), "candidates"),
                              int_list(a.str("groups", "32,128"), "groups"));
  a.required("calib");
  const bool has_n = a.opt("nsamples").has_value(), has_l = a.opt("seqlen").has_value();
  nlohmann::json calib = calibration_from_args(a);
  if (!has_n) calib["nsamples"] = 4;
  if (!has_l) calib["seqlen"] = 256;
  auto eval = a.opt("eval");
  TextFormat efmt = parse_text_format(a.str("eval-format", "docs"));
  int ctx = int(a.integer("ctx", 512));
  int max_windows = int(a.integer("max-windows", 0));
  bool json = a.flag("json");
  a.finish();

  double t0 = now_seconds();
  auto m = load_model(dir);
  const size_t bytes_before = m->n_bytes();
  const double bpw_before = m->linear_bits_per_weight();
  CalibOptions co = parse_recipe({{"stages", {nlohmann::json::object()}}, {"calibration", calib}}, "search").calib;
  co.seqlen = std::min(co.seqlen, m->cfg.max_pos);
  Samples windows = load_calibration(m->tokenizer(), co);
  std::fprintf(stderr, "search: %zu Linears x %zu candidates, KL over %zu windows of %d tokens\n",
               m->blocks.size() * kLinearsPerBlock, cands.size(), windows.size(), co.seqlen);
  auto layers = measure_sensitivity(*m, windows, cands, true);
  const int64_t budget = budget_bytes(*m, budget_bpw);
  std::vector<std::vector<int64_t>> cost;
  std::vector<std::vector<double>> loss;
  for (const auto& l : layers) cost.push_back(l.bytes), loss.push_back(l.kl);
  KnapsackResult k = choose_under_budget(cost, loss, budget);
  const double search_seconds = now_seconds() - t0;

  nlohmann::json rj = {{"stages", search_recipe_stages(layers, cands, k.choice, method)}, {"calibration", calib}};
  Recipe recipe = parse_recipe(rj, "search");
  m = load_model(dir);
  CompressReport rep = run_recipe(*m, recipe, true);
  save_model(*m, out);
  auto saved = load_model(out);  // verify what was written
  int64_t saved_bytes = 0;
  for (const auto& b : saved->blocks)
    for (const auto& l : b.lin) saved_bytes += int64_t(l.w->nbytes());
  const double saved_bpw = saved->linear_bits_per_weight();
  check(saved_bytes == k.bytes, "search: saved projections hold {} bytes, the choice predicted {}", saved_bytes,
        k.bytes);
  check(saved_bytes <= budget && saved_bpw <= budget_bpw, "search: saved model ({} bytes, {} bpw) exceeds the budget",
        saved_bytes, saved_bpw);

  nlohmann::json table = nlohmann::json::array();
  for (size_t i = 0; i < layers.size(); i++) {
    const auto& c = cands[size_t(k.choice[i])];
    table.push_back({{"name", layers[i].name},
                     {"bits", c.bits},
                     {"group", c.group},
                     {"kl", layers[i].kl[size_t(k.choice[i])]},
                     {"bytes", layers[i].bytes[size_t(k.choice[i])]}});
  }
  nlohmann::json j = {{"model", dir},
                      {"output", out},
                      {"method", method},
                      {"loss", "mean per-token KL(orig || one Linear RTN-quantized), nats"},
                      {"choice", "exact multiple-choice knapsack (DP over bytes)"},
                      {"dp_unit_bytes", k.unit},
                      {"budget_bits_per_weight", budget_bpw},
                      {"budget_bytes", budget},
                      {"bytes_projections", saved_bytes},
                      {"linear_bits_per_weight", saved_bpw},
                      {"linear_bits_per_weight_before", bpw_before},
                      {"bytes_before", bytes_before},
                      {"bytes", saved->n_bytes()},
                      {"predicted_kl_sum", k.loss},
                      {"layers", table},
                      {"recipe", recipe.json},
                      {"search_seconds", search_seconds},
                      {"compress_seconds", rep.seconds}};
  if (eval) {
    std::vector<int> ids = tokenize_file(saved->tokenizer(), *eval, efmt);
    PplOptions po;
    po.ctx = std::min(ctx, saved->cfg.max_pos);
    po.max_windows = max_windows;
    po.progress = false;
    PplResult r = perplexity(*saved, ids, po);
    j["eval"] = {{"data", *eval}, {"ppl", r.ppl}, {"nll", r.nll}, {"windows", r.windows}, {"ctx", po.ctx}};
  }
  if (json) {
    print_json(j);
    return 0;
  }
  std::printf("%-36s %-10s %12s %8s\n", "linear", "setting", "KL", "bytes");
  for (size_t i = 0; i < layers.size(); i++)
    std::printf("%-36s %-10s %12.6f %8lld\n", layers[i].name.c_str(), cands[size_t(k.choice[i])].label().c_str(),
                layers[i].kl[size_t(k.choice[i])], (long long)layers[i].bytes[size_t(k.choice[i])]);
  std::printf("budget %.4f bpw = %lld bytes; saved projections %lld bytes = %.4f bpw; predicted sum KL %.6f\n",
              budget_bpw, (long long)budget, (long long)saved_bytes, saved_bpw, k.loss);
  if (eval) std::printf("ppl %.5f on %s (%ld windows)\n", j["eval"]["ppl"].get<double>(), eval->c_str(),
                        j["eval"]["windows"].get<long>());
  std::printf("wrote %s (recipe in config.json)\n", out.c_str());
  return 0;
}

}  // namespace lmp

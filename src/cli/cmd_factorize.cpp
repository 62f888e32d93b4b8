// lmpress factorize --model DIR --method svd|asvd|laser|lplr|tensorgpt [--ratio R | --energy E (svd)] [--alpha A (asvd)]
//                   [--factor-dtype f32|f16] [--allocate [--grid 0.4,...,1.0]] (asvd: per-layer ratios)
//                   [--keep 0.02,0.05,0.1,0.25 --stack N] (laser search grid and greedy stacking)
//                   [--bits B [--bits-b B2] --group G --sym --sketch gaussian|svd --sketch-seed S] (lplr)
//                   [--tt-rank R [--tt-shape 4,4,4]] (tensorgpt: the embedding table as per-token tensor trains)
//                   [--calib FILE --calib-format docs|text --nsamples N --seqlen L --search-samples S (4)]
//                   [--targets RE] [--ignore RE] -o OUT [--json] [--print-recipe]
// Builds a one-stage recipe and runs it like `compress`. The searches (ASVD's sensitivity-based allocation,
// LASER's intervention search) run here first, on S calibration windows that follow the N used for
// statistics (a held-out split of the calibration text); their tables are stored in the recipe stage.
#include <cstdio>

#include "cli/commands.h"
#include "calib/targets.h"
#include "compress/recipe.h"
#include "core/error.h"
#include "lowrank/asvd.h"
#include "lowrank/laser.h"

namespace lmp {

static std::vector<double> parse_real_list(const std::string& s, const char* opt) {
  std::vector<double> v;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    try {
      v.push_back(std::stod(s.substr(pos, end - pos)));
    } catch (...) {
      fail("--{} '{}': want a comma-separated list of numbers", opt, s);
    }
    pos = end + 1;
  }
  check(!v.empty(), "--{}: empty list", opt);
  return v;
}

// Fit windows (the recipe's N) and the S held-out windows after them, for the searches.
static void search_windows(const Model& m, const Recipe& r, int search_samples, Samples* fit, Samples* score) {
  check(r.has_calibration, "factorize: the search needs calibration text (--calib FILE)");
  check(search_samples >= 1, "--search-samples {}: must be ≥ 1", search_samples);
  CalibOptions co = r.calib;
  co.seqlen = std::min(co.seqlen, m.cfg.max_pos);
  co.nsamples += search_samples;
  Samples all = load_calibration(m.tokenizer(), co);
  fit->assign(all.begin(), all.end() - search_samples);
  score->assign(all.end() - search_samples, all.end());
}

int cmd_factorize(int argc, char** argv) {
  Args a(argc, argv, 2, {"json", "allocate", "sym", "print-recipe"});
  std::string dir = a.required("model"), out = a.required("output");
  std::string method = a.required("method");
  check(method == "svd" || method == "asvd" || method == "laser" || method == "lplr" || method == "tensorgpt",
        "--method '{}': choose svd, asvd, laser, lplr or tensorgpt", method);
  nlohmann::json stage = {{"modifier", method}};
  if (method == "tensorgpt") {
    check(a.opt("tt-rank").has_value(), "--method tensorgpt needs --tt-rank R (the largest TT-rank, ≥ 1)");
    stage["tt_rank"] = a.integer("tt-rank", 1);
    if (a.opt("tt-shape")) {
      nlohmann::json shape = nlohmann::json::array();
      for (double d : parse_real_list(a.str("tt-shape", ""), "tt-shape")) {
        check(d >= 1 && d == double(int64_t(d)), "--tt-shape: mode sizes must be integers ≥ 1 (got {})", d);
        shape.push_back(int64_t(d));
      }
      stage["tt_shape"] = shape;
    }
  } else if (method != "laser") {
    if (auto e = a.opt("energy")) {
      check(method == "svd", "--energy is only supported by --method svd");
      stage["energy"] = a.real("energy", 0);
    } else {
      stage["ratio"] = a.real("ratio", 0.8);
    }
  }
  if (method == "svd" || method == "asvd") stage["factor_dtype"] = a.str("factor-dtype", "f32");
  if (method == "asvd") stage["alpha"] = a.real("alpha", 0.5);
  if (method == "lplr") {
    stage["bits"] = a.integer("bits", 4);
    stage["group"] = a.integer("group", 32);
    stage["sym"] = a.flag("sym");
    if (a.opt("bits-b")) stage["bits_b"] = a.integer("bits-b", 4);
    stage["sketch"] = a.str("sketch", "gaussian");
    stage["seed"] = a.integer("sketch-seed", 0);
  }
  targets_from_args(a, stage);
  bool allocate = a.flag("allocate");
  check(!allocate || method == "asvd", "--allocate is only supported by --method asvd");
  std::vector<double> grid = parse_real_list(a.str("grid", "0.4,0.5,0.6,0.7,0.8,0.9,1.0"), "grid");
  std::vector<double> keeps = parse_real_list(a.str("keep", "0.02,0.05,0.1,0.25"), "keep");
  int stack = int(a.integer("stack", 1));
  int search_samples = int(a.integer("search-samples", 4));
  nlohmann::json calib = calibration_from_args(a);
  bool json = a.flag("json"), print = a.flag("print-recipe");
  a.finish();

  if (method == "asvd" && allocate) {
    make_modifier(stage);  // validates arguments before any loading
    Recipe r = parse_recipe({{"stages", {stage}}, {"calibration", calib}}, "factorize");
    auto m = load_model(dir);
    Samples fit, score;
    search_windows(*m, r, search_samples, &fit, &score);
    AsvdSensitivity sens = asvd_sensitivity(*m, fit, score, grid, stage["alpha"].get<double>(), Targets::from_stage(stage));
    stage["ratios"] = asvd_allocate(sens, stage["ratio"].get<double>());
    stage["sensitivity"] = sens.to_json();
  } else if (method == "laser") {
    Recipe r = parse_recipe({{"stages", {stage}}, {"calibration", calib}}, "factorize");  // for its calibration
    auto m = load_model(dir);
    Samples fit, score;
    search_windows(*m, r, search_samples, &fit, &score);
    LaserSearch s = laser_search(*m, score, keeps, Targets::from_stage(stage), stack);
    nlohmann::json ivs = nlohmann::json::array();
    for (const auto& iv : s.chosen) ivs.push_back({{"linear", iv.linear}, {"keep", iv.keep}});
    if (s.chosen.empty())
      std::fprintf(stderr, "laser: no intervention beats the unmodified model (calibration ppl %.4f); output unchanged\n",
                   s.base_ppl);
    stage["interventions"] = ivs;
    stage["search"] = s.to_json();
    calib = nullptr;  // applying the interventions is data-free
  }
  nlohmann::json rj = {{"stages", {stage}}, {"calibration", calib}};
  Recipe r = parse_recipe(rj, "factorize");
  make_modifier(stage);
  if (print) std::fprintf(stderr, "%s\n", rj.dump(2).c_str());
  return run_and_save(dir, r, out, json);
}

}  // namespace lmp

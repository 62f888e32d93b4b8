// lmpress prune --model DIR --method depth|flap|slicegpt --sparsity S (reached from cmd_prune)
//                          --calib FILE|random --calib-format docs|text --nsamples N --seqlen L [--seed S]
//                          [--no-bias-compensation] [--flap-scope layer|global] -o OUT [--json]
// Structured pruning that removes work (prune/depth.h, prune/flap.h, prune/slicegpt.h). These act across
// blocks (a global ranking, a chain of rotations), so they run as whole-model passes rather than through the
// per-block recipe pipeline; the recipe is still recorded in the output (quantization_config.recipe).
// --calib random: N×L uniform random token ids (seeded), for timing-only models without a tokenizer.
#include <cstdio>
#include <random>

#include "cli/commands.h"
#include "calib/calib_data.h"
#include "core/error.h"
#include "core/progress.h"
#include "prune/depth.h"
#include "prune/flap.h"
#include "prune/slicegpt.h"
#include "prune/structured_common.h"

namespace lmp {

static Samples structured_calibration(const Model& m, const nlohmann::json& calib) {
  check(!calib.is_null(), "prune: needs calibration data (--calib FILE, or --calib random)");
  const int n = calib["nsamples"].get<int>(), L = std::min(calib["seqlen"].get<int>(), m.cfg.max_pos);
  if (calib["path"] == "random") {
    std::mt19937 rng(uint32_t(std::max<int64_t>(calib["seed"].get<int64_t>(), 0)));
    Samples s(static_cast<size_t>(n), std::vector<int>(static_cast<size_t>(L)));
    for (auto& x : s)
      for (auto& id : x) id = int(rng() % uint32_t(m.cfg.vocab));
    return s;
  }
  CalibOptions o;
  o.path = calib["path"].get<std::string>();
  o.format = parse_text_format(calib["format"].get<std::string>());
  o.nsamples = n, o.seqlen = L, o.seed = calib["seed"].get<int64_t>();
  return load_calibration(m.tokenizer(), o);
}

int cmd_prune_structured(int argc, char** argv) {
  Args a(argc, argv, 2, {"json", "no-bias-compensation"});
  std::string dir = a.required("model"), out = a.required("output"), method = a.required("method");
  double sparsity = a.real("sparsity", 0.2);
  bool compensate = !a.flag("no-bias-compensation"), json = a.flag("json");
  std::string scope = a.str("flap-scope", "layer");
  nlohmann::json calib = calibration_from_args(a);
  a.finish();
  check(method == "depth" || method == "flap" || method == "slicegpt",
        "--method '{}': want depth, flap or slicegpt", method);
  check_sparsity(sparsity, "--sparsity");
  nlohmann::json stage = {{"modifier", method}, {"sparsity", sparsity}};
  FlapScope flap_scope = parse_flap_scope(scope);
  if (method == "flap") stage["bias_compensation"] = compensate, stage["scope"] = scope;

  auto m = load_model(dir);
  const int64_t params_before = m->n_params();
  const size_t bytes_before = m->n_bytes();
  const int layers_before = m->cfg.n_layers, hidden_before = m->cfg.hidden;
  if (method == "depth") depth_blocks_to_remove(m->cfg.n_layers, sparsity);  // fail before calibrating
  if (method == "slicegpt") sliced_width(m->cfg.hidden, sparsity);
  Samples samples = structured_calibration(*m, calib);
  double t0 = now_seconds();
  nlohmann::json detail;
  if (method == "depth") {
    DepthReport r = depth_prune(*m, samples, sparsity);
    detail = {{"removed_blocks", r.removed}, {"calib_nll", r.base_nll}, {"calib_nll_without_block", r.nll_without}};
  } else if (method == "flap") {
    FlapPlan p = flap_prune(*m, samples, sparsity, compensate, flap_scope);
    detail = {{"projection_params", p.prunable_params},
              {"target_removed", p.target_params},
              {"removed", p.removed_params},
              {"layer_heads", m->cfg.layer_heads},
              {"layer_kv_heads", m->cfg.layer_kv_heads},
              {"layer_intermediate", m->cfg.layer_intermediate}};
  } else {
    SliceGptReport r = slicegpt(*m, samples, sparsity);
    detail = {{"kept_energy", r.kept_energy}};
  }
  const double seconds = now_seconds() - t0;
  m->recipe = {{"stages", {stage}}, {"calibration", calib}};
  save_model(*m, out);
  nlohmann::json j = {{"model", dir},
                      {"output", out},
                      {"method", method},
                      {"sparsity", sparsity},
                      {"recipe", m->recipe},
                      {"seconds", seconds},
                      {"calibration_samples", samples.size()},
                      {"calibration_seqlen", samples[0].size()},
                      {"params_before", params_before},
                      {"params", m->n_params()},
                      {"bytes_before", bytes_before},
                      {"bytes", m->n_bytes()},
                      {"layers_before", layers_before},
                      {"layers", m->cfg.n_layers},
                      {"hidden_before", hidden_before},
                      {"hidden", m->cfg.hidden},
                      {"detail", detail}};
  if (json) {
    print_json(j);
  } else {
    std::printf("wrote %s: %s %.2f, params %lld -> %lld, bytes %zu -> %zu, layers %d -> %d, hidden %d -> %d, %.1f s\n",
                out.c_str(), method.c_str(), sparsity, (long long)params_before, (long long)m->n_params(), bytes_before,
                m->n_bytes(), layers_before, m->cfg.n_layers, hidden_before, m->cfg.hidden, seconds);
  }
  return 0;
}

}  // namespace lmp

#include "compress/recipe.h"

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "lowrank/asvd.h"
#include "lowrank/laser.h"
#include "lowrank/lplr.h"
#include "lowrank/svd.h"
#include "lowrank/tensorgpt.h"
#include "prune/dsnot.h"
#include "prune/magnitude.h"
#include "prune/sparsegpt.h"
#include "prune/wanda.h"
#include "quant/awq.h"
#include "quant/bcq.h"
#include "quant/owq.h"
#include "quant/squeezellm.h"
#include "quant/f16.h"
#include "quant/fp8.h"
#include "quant/gptq.h"
#include "quant/llm_int8.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"
#include "quant/w8a8.h"

namespace lmp {

const std::vector<ModifierInfo>& modifier_table() {
  static const std::vector<ModifierInfo> t = {
      {"rtn", "quantization", "round-to-nearest group-wise int2/3/4/8 (no calibration)", make_rtn_modifier},
      {"gptq", "quantization", "GPTQ: OBS column sweep with inverse-Hessian error compensation", make_gptq_modifier},
      {"svd", "low-rank", "truncated SVD W = (U_k sqrt S_k)(sqrt S_k V_k^T), rank from ratio/energy (no calibration)", make_svd_modifier},
      {"asvd", "low-rank", "ASVD: SVD of W diag(mean|x|^alpha), scaling undone; optional per-layer ratios", make_asvd_modifier},
      {"laser", "low-rank", "LASER: rank reduction of chosen Linears (interventions from `factorize --method laser`)", make_laser_modifier},
      {"lplr", "low-rank", "LPLR: quantized Gaussian sketch L, least-squares R, both factors packed int", make_lplr_modifier},
      {"tensorgpt", "low-rank", "TensorGPT: each token embedding as a tensor train (TT-SVD, ranks <= tt_rank)",
       make_tensorgpt_modifier},
      {"magnitude", "pruning", "magnitude pruning: lowest |w| per matrix or row, or N:M (no calibration)",
       make_magnitude_modifier},
      {"wanda", "pruning", "Wanda: lowest |w|·‖x‖₂ per output row or N:M, no update", make_wanda_modifier},
      {"sparsegpt", "pruning", "SparseGPT: OBS sweep pruning (unstructured or N:M), optional joint 4-bit",
       make_sparsegpt_modifier},
      {"dsnot", "pruning", "DSnoT: training-free mask refinement of a Wanda/SparseGPT mask", make_dsnot_modifier},
      {"awq", "quantization", "AWQ: activation-aware per-channel scales + clipping search, then RTN", make_awq_modifier},
      {"f16", "quantization", "IEEE half-precision projections (no calibration; the baseline)", make_f16_modifier},
      {"w8a8", "quantization", "ZeroQuant W8A8: int8 weights (row/group) x dynamic per-token int8 activations",
       make_w8a8_modifier},
      {"smoothquant", "quantization", "SmoothQuant: activation outliers migrated into weights (alpha), then W8A8",
       make_smoothquant_modifier},
      {"llm_int8", "quantization", "LLM.int8(): outlier input columns kept f16, the rest int8 x int8",
       make_llm_int8_modifier},
      {"fp8", "quantization", "FP8 E4M3/E5M2 weights, f16 group scales, exponent-bias search", make_fp8_modifier},
      {"squeezellm", "quantization", "SqueezeLLM: Hessian-diag-weighted k-means LUT per row (+ sparse outliers)",
       make_squeezellm_modifier},
      {"bcq", "quantization", "BCQ: binary-coding planes (greedy + alternating LS), LUT-GEMM kernel", make_bcq_modifier},
      {"owq", "quantization", "OWQ: weak columns (H_jj |W_:j|^2) kept f16, the rest GPTQ on the reduced Hessian",
       make_owq_modifier},
      {"fp4", "quantization", "FP4 E2M1 weights, f16 group scales, exponent-bias search", make_fp4_modifier},
  };
  return t;
}

std::unique_ptr<BlockModifier> make_modifier(const nlohmann::json& stage) {
  check(stage.is_object() && stage.contains("modifier") && stage["modifier"].is_string(),
        "recipe: every stage needs a string field 'modifier'");
  std::string name = stage["modifier"].get<std::string>();
  for (const auto& m : modifier_table())
    if (name == m.name) return m.make(stage);
  std::string known;
  for (const auto& m : modifier_table()) known += std::string(known.empty() ? "" : ", ") + m.name;
  fail("recipe: unknown modifier '{}' (known: {})", name, known);
}

Recipe parse_recipe(const nlohmann::json& j, const std::string& where) {
  check(j.is_object() && j.contains("stages") && j["stages"].is_array() && !j["stages"].empty(),
        "{}: a recipe is an object with a non-empty array 'stages'", where);
  Recipe r;
  r.json = j;
  for (const auto& s : j["stages"]) r.stages.push_back(s);
  if (j.contains("calibration") && !j["calibration"].is_null()) {
    const auto& c = j["calibration"];
    check(c.is_object() && c.contains("path"), "{}: 'calibration' needs a 'path'", where);
    r.has_calibration = true;
    r.calib.path = c["path"].get<std::string>();
    r.calib.format = parse_text_format(c.value("format", "text"));
    r.calib.nsamples = c.value("nsamples", 128);
    r.calib.seqlen = c.value("seqlen", 2048);
    r.calib.seed = c.value("seed", int64_t(-1));
  }
  return r;
}

Recipe load_recipe_file(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON ({})", path, e.what());
  }
  return parse_recipe(j, path);
}

CompressReport run_recipe(Model& m, const Recipe& r, bool progress) {
  CompressReport rep;
  double t0 = now_seconds();
  std::vector<std::unique_ptr<BlockModifier>> owned;
  std::vector<BlockModifier*> mods;
  bool need_calib = false;
  for (const auto& s : r.stages) {
    owned.push_back(make_modifier(s));
    mods.push_back(owned.back().get());
    need_calib |= owned.back()->needs_calibration();
  }
  PipelineOptions po;
  po.progress = progress;
  if (need_calib) {
    check(r.has_calibration, "recipe: modifier '{}' needs calibration data (--calib FILE)",
          [&] { for (auto* m : mods) if (m->needs_calibration()) return m->name(); return std::string(); }());
    CalibOptions co = r.calib;
    co.seqlen = std::min(co.seqlen, m.cfg.max_pos);
    Samples samples = load_calibration(m.tokenizer(), co);
    rep.nsamples = int(samples.size());
    rep.seqlen = co.seqlen;
    rep.pipeline = run_sequential(m, samples, mods, po);
  } else {
    run_data_free(m, mods, po);
  }
  for (BlockModifier* mod : mods) mod->apply_head(m);
  m.recipe = r.json;
  rep.seconds = now_seconds() - t0;
  return rep;
}

}  // namespace lmp

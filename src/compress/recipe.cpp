#include "compress/recipe.h"

#include <map>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "lowrank/asvd.h"
#include "lowrank/laser.h"
#include "lowrank/lplr.h"
#include "lowrank/svd.h"
#include "lowrank/tensorgpt.h"
#include "prune/dsnot.h"
#include "prune/esparse.h"
#include "prune/gum.h"
#include "prune/magnitude.h"
#include "prune/samsp.h"
#include "prune/sparsegpt.h"
#include "prune/wanda.h"
#include "quant/awq.h"
#include "quant/bcq.h"
#include "quant/onebit.h"
#include "quant/omniquant.h"
#include "quant/os_plus.h"
#include "quant/owq.h"
#include "quant/quantease.h"
#include "quant/quip.h"
#include "quant/signround.h"
#include "quant/mofq.h"
#include "quant/olive.h"
#include "quant/wkvquant.h"
#include "quant/squeezellm.h"
#include "quant/f16.h"
#include "quant/fp8.h"
#include "quant/fptq.h"
#include "quant/gptq.h"
#include "quant/llm_int8.h"
#include "quant/lorc.h"
#include "quant/norm_tweak.h"
#include "quant/rtn.h"
#include "quant/smoothquant.h"
#include "quant/spqr.h"
#include "quant/w8a8.h"
#include "quant/zeroquant_fp.h"

namespace lmp {

// LoRC and Norm Tweaking wrap the weight-only quantization stage they act on (they need the Linears or the block
// outputs from before quantization): the stage's "quantizer" object is that stage.
static std::unique_ptr<BlockModifier> quantizer_of(const nlohmann::json& st, const char* mod) {
  check(st.contains("quantizer") && st["quantizer"].is_object(),
        "{}: the stage needs a 'quantizer' object, the weight-only quantization stage it wraps "
        "(e.g. {{\"modifier\": \"gptq\", \"bits\": 3, \"group\": 32}})", mod);
  return make_modifier(st["quantizer"]);
}
static std::unique_ptr<BlockModifier> make_lorc_stage(const nlohmann::json& st) {
  return make_lorc_modifier(st, quantizer_of(st, "lorc"));
}
static std::unique_ptr<BlockModifier> make_norm_tweak_stage(const nlohmann::json& st) {
  return make_norm_tweak_modifier(st, quantizer_of(st, "norm_tweak"));
}

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
      {"esparse", "pruning", "E-Sparse: N:M by |w|·(entropy + α·rms of x) over shuffled input channels (perm_in)",
       make_esparse_modifier},
      {"samsp", "pruning", "SAMSP: per-matrix sparsity from OBS (Hessian) sensitivity under a global target, then SparseGPT",
       make_samsp_modifier},
      {"gum", "structured pruning", "GUM: MLP neurons removed by sensitivity × uniqueness (|cos| of activations)",
       make_gum_modifier},
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
      {"wkvquant", "quantization",
       "WKVQuant KV cache: per-channel K/V smoothing (alpha by cross-block MAE) for --kv-method wkvquant",
       make_wkvquant_modifier},
      {"mofq", "quantization", "MoFQ (survey: MoPQ): per Linear the lower-error of intB and fpB (e2m1/e4m3)",
       make_mofq_modifier},
      {"fptq", "quantization", "FPTQ W4A8: int4 group weights x per-token int8 acts, log equalization on hard inputs",
       make_fptq_modifier},
      {"olive", "quantization", "OliVe: 4-bit outlier-victim pairs (outlier as abfloat, neighbour pruned), no calibration",
       make_olive_modifier},
      {"fp4", "quantization", "FP4 E2M1 weights, f16 group scales, exponent-bias search", make_fp4_modifier},
      {"spqr", "quantization", "SpQR: GPTQ sweep, groups of 16 with 3-bit quantized stats, OBS-chosen f16 outliers (CSR)",
       make_spqr_modifier},
      {"quip", "quantization", "QuIP: randomized Hadamard incoherence U W V^T, H' = V H V^T, then LDLQ (GPTQ sweep)",
       make_quip_modifier},
      {"onebit", "quantization", "OneBit: diag(g) sign(W) diag(h), g/h from SVID (rank-1 SVD of |W|), 1 bit/weight",
       make_onebit_modifier},
      {"omniquant", "quantization", "OmniQuant: learnable weight clipping (+ LET scales) by block output MSE, AdamW",
       make_omniquant_modifier},
      {"signround", "quantization", "SignRound: rounding offsets + min/max by signed gradient descent per block",
       make_signround_modifier},
      {"lorc", "quantization", "ZeroQuant-V2 LoRC: rank-k SVD of the error W - Q stored beside Q (wraps a quantizer stage)",
       make_lorc_stage},
      {"quantease", "quantization", "QuantEase: coordinate descent on |WX - QX|^2 from GPTQ/RTN, optional f16 outliers",
       make_quantease_modifier},
      {"zeroquant_fp", "quantization", "ZeroQuant-FP: FP4/FP8 weights, power-of-two scales, per-token FP8 E4M3 activations",
       make_zeroquant_fp_modifier},
      {"norm_tweak", "quantization", "Norm Tweaking: block RMSNorm weights tuned to the float block (wraps a quantizer stage)",
       make_norm_tweak_stage},
      {"os_plus", "quantization", "Outlier Suppression+: channel shift (max+min)/2 + searched scales, then W8A8",
       make_os_plus_modifier},
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

static std::map<std::string, ModelStageFn>& model_stages() {
  static std::map<std::string, ModelStageFn> t;
  return t;
}

void register_model_stage(const std::string& name, ModelStageFn fn) { model_stages()[name] = fn; }

bool is_model_stage(const nlohmann::json& stage) {
  return stage.is_object() && stage.contains("modifier") && stage["modifier"] == "train";
}

// One pass of block-wise stages over the model (calibrated when any stage needs it).
static void run_pass(Model& m, const Recipe& r, const std::vector<nlohmann::json>& stages, bool progress,
                     CompressReport& rep) {
  if (stages.empty()) return;
  std::vector<std::unique_ptr<BlockModifier>> owned;
  std::vector<BlockModifier*> mods;
  bool need_calib = false;
  for (const auto& s : stages) {
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
}

CompressReport run_recipe(Model& m, const Recipe& r, bool progress) {
  CompressReport rep;
  double t0 = now_seconds();
  std::vector<nlohmann::json> pass;
  for (const auto& s : r.stages) {
    if (!is_model_stage(s)) {
      pass.push_back(s);
      continue;
    }
    run_pass(m, r, pass, progress, rep);
    pass.clear();
    const std::string name = s["modifier"].get<std::string>();
    auto it = model_stages().find(name);
    check(it != model_stages().end(), "recipe: the '{}' stage runs only from the lmpress command line", name);
    std::unique_ptr<Model> next = it->second(m, s);
    m = std::move(*next);
  }
  run_pass(m, r, pass, progress, rep);
  m.recipe = r.json;
  rep.seconds = now_seconds() - t0;
  return rep;
}

}  // namespace lmp

// Recipes (llm-compressor style): an ordered list of stages, each naming a modifier and its arguments,
// with `targets` (regex over Linear names) and `ignore`, plus the calibration data to use:
//   {"stages": [{"modifier": "gptq", "bits": 4, "group": 128, "targets": "mlp|self_attn", "ignore": []}],
//    "calibration": {"path": "calib.txt", "format": "docs", "nsamples": 64, "seqlen": 512}}
// Every CLI shortcut (`lmpress quantize --method gptq ...`) builds one; the recipe used is stored in the
// output's config.json (quantization_config.recipe) so any result can be reproduced.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "calib/calib_data.h"
#include "calib/pipeline.h"
#include "model/model.h"

namespace lmp {

struct ModifierInfo {
  const char* name;
  const char* family;       // "quantization", "pruning", "low-rank", ...
  const char* description;  // one line for --help
  std::unique_ptr<BlockModifier> (*make)(const nlohmann::json& stage);
};
const std::vector<ModifierInfo>& modifier_table();
std::unique_ptr<BlockModifier> make_modifier(const nlohmann::json& stage);  // throws for unknown names

struct Recipe {
  nlohmann::json json;                 // as given (normalised), stored in outputs
  std::vector<nlohmann::json> stages;
  bool has_calibration = false;
  CalibOptions calib;
};

Recipe parse_recipe(const nlohmann::json& j, const std::string& where);
Recipe load_recipe_file(const std::string& path);

struct CompressReport {
  double seconds = 0;
  PipelineReport pipeline;
  int nsamples = 0, seqlen = 0;
};

// Whole-model stages ({"modifier": "train", ...}: fine-tuning, distillation) run between the block-wise
// stages on the model so far and replace it. Their runner is registered by the CLI (the `lmpress train`
// command's own option parser); without one such a stage is an error.
using ModelStageFn = std::unique_ptr<Model> (*)(const Model& m, const nlohmann::json& stage);
void register_model_stage(const std::string& name, ModelStageFn fn);
bool is_model_stage(const nlohmann::json& stage);

// Builds every stage's modifier, loads calibration data when any needs it, runs them through the
// SequentialPipeline (or block by block when all are data-free), and records the recipe in m.recipe.
// Consecutive block-wise stages form one pass; a whole-model stage ends the pass and runs on its result.
CompressReport run_recipe(Model& m, const Recipe& r, bool progress = true);

}  // namespace lmp

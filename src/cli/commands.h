// The lmpress sub-commands: one function each, one row each in the table of main.cpp.
#pragma once
#include <memory>

#include "cli/args.h"

namespace lmp {

int cmd_inspect(int argc, char** argv);
int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_compress(int argc, char** argv);
int cmd_quantize(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_synth(int argc, char** argv);
int cmd_roofline(int argc, char** argv);
int cmd_report(int argc, char** argv);
int cmd_compare(int argc, char** argv);
int cmd_factorize(int argc, char** argv);
int cmd_prune(int argc, char** argv);
int cmd_export(int argc, char** argv);
// `export --format gguf`: reads --model, -o, --type, --json from a (after the caller read --format).
int export_gguf_main(const Args& a);
int cmd_train(int argc, char** argv);
int cmd_task_data(int argc, char** argv);
struct Model;
// The recipe stage {"modifier": "train", ...} (registered with compress/recipe.h by main).
std::unique_ptr<Model> train_stage(const Model& m, const nlohmann::json& stage);
int cmd_prune_structured(int argc, char** argv);
int cmd_search(int argc, char** argv);

// Shared by the compression shortcuts (cmd_compress.cpp).
nlohmann::json calibration_from_args(const Args& a);
void targets_from_args(const Args& a, nlohmann::json& stage);
struct Recipe;
int run_and_save(const std::string& model_dir, const Recipe& recipe, const std::string& out, bool json);

}  // namespace lmp

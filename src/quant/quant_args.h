// Reading and validating quantization arguments of a recipe stage (bits, group, sym, mse, ...), shared by
// every quantization modifier so that the same flag means the same thing everywhere.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "quant/grid.h"

namespace lmp {

// {"bits": 4, "group": 128, "sym": false, "mse": false} → grid; throws lmp::Error naming the modifier
// for unsupported combinations (bits ∉ {2,3,4,8}, group ∉ {0,32,64,128,256}).
QuantGrid grid_from_stage(const nlohmann::json& stage, const char* modifier);
double stage_real(const nlohmann::json& stage, const char* key, double dflt, double lo, double hi, const char* modifier);
long stage_int(const nlohmann::json& stage, const char* key, long dflt, long lo, long hi, const char* modifier);

}  // namespace lmp

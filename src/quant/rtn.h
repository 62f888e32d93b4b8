// RTN (round-to-nearest) weight quantization modifier.
#pragma once
#include <memory>

#include "calib/pipeline.h"

namespace lmp {
std::unique_ptr<BlockModifier> make_rtn_modifier(const nlohmann::json& stage);
}

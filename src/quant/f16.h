// f16: stores every targeted projection as IEEE half (DenseF16, 2 bytes/weight), no calibration. The
// baseline that every low-bit method is compared against in bench/README.md.
#pragma once
#include <memory>

#include "calib/pipeline.h"

namespace lmp {
std::unique_ptr<BlockModifier> make_f16_modifier(const nlohmann::json& stage);
}

// OliVe outlier-victim pair quantization (Guo et al. 2023, arXiv 2304.07493) of the targeted Linears into the
// 4-bit OVP format of kernels/olive.h (per-group scale search, each pair the lower-error of a normal int4 pair
// and an outlier + pruned victim). No calibration. Stage arguments: bits (4 only), group (128; 0 = per row).
#pragma once
#include <memory>

#include "calib/pipeline.h"

namespace lmp {

std::unique_ptr<BlockModifier> make_olive_modifier(const nlohmann::json& stage);

}  // namespace lmp

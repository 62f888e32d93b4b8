// MoFQ, Mixture of Formats Quantization (Zhang, Zhao, Cao, Wang, Cao, Yang, Yang, Zhang, Xu 2023, "Integer or
// Floating Point? New Outlooks for Low-Bit Quantization on Large Language Models", arXiv 2305.12356; the
// compression survey of Zhu et al. 2023 lists it as "MoPQ [Zhang et al., 2023b]"). No single format fits every
// layer, so each Linear gets, at the same bit width and group, whichever of the integer grid (kernels/qint.h,
// RTN) and the low-bit float format (FP4 E2M1 / FP8 E4M3 with the exponent-bias search, quant/fp8.h) has
// the lower quantization error — the paper's layer-wise selection with the tensor-error metric
// (mean (w − ŵ)²). Each Linear is then stored and run in the chosen format; nothing new at inference.
// Stage arguments: bits (4 → int4 vs e2m1, 8 → int8 vs e4m3), group (128; 0 = per row), sym (false), mse
// (false: pass true so that the integer side gets a clipping search like the float side's bias search).
#pragma once
#include <memory>

#include "calib/pipeline.h"

namespace lmp {

std::unique_ptr<BlockModifier> make_mofq_modifier(const nlohmann::json& stage);

}  // namespace lmp

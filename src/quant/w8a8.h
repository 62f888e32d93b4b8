// W8A8 modifier (ZeroQuant: Yao, Aminabadi, Zhang, Wu, Li, He 2022, "ZeroQuant: Efficient and Affordable
// Post-Training Quantization for Large-Scale Transformers", arXiv 2206.01861): round-to-nearest symmetric
// int8 weights, per output row or group-wise (ZeroQuant's group-wise weights), and activations quantized
// per token at run time (ZeroQuant's token-wise dynamic quantization) — no calibration. Stored as a
// W8A8Matrix (kernels/w8a8.h), executed by the int8 × int8 → int32 kernels.
// The same weight step ends SmoothQuant (quant/smoothquant.cpp); the stage arguments are shared here.
#pragma once
#include <memory>

#include "calib/pipeline.h"
#include "calib/targets.h"

namespace lmp {

// Reads "group" (0 = per row; 32..256), checks "bits" and "act_bits" are 8 when given.
int w8a8_group_from_stage(const nlohmann::json& stage, const char* modifier);
// Replaces every targeted Linear of block `layer` by its W8A8 quantization.
void quantize_block_w8a8(Block& b, int layer, const Targets& targets, int group);

std::unique_ptr<BlockModifier> make_w8a8_modifier(const nlohmann::json& stage);

}  // namespace lmp

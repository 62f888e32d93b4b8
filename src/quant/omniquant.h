// OmniQuant (Shao, Chen, Zhang, Xu, Zhao, Li, Zhang, Gao, Qiao, Luo 2024, "OmniQuant: Omnidirectionally
// Calibrated Quantization for Large Language Models", ICLR 2024, arXiv 2308.13137), weight-only.
// Block by block (train/block_recon.h), AdamW minimises the block output MSE against the float block over
//  - LWC, Learnable Weight Clipping (paper eq. 2): per (row, group) γ = σ(γ̃), β = σ(β̃) ∈ (0, 1) shrink the
//    group's max and min before the asymmetric grid, h = (γ·max − β·min)/(2^N − 1), z = −round(β·min/h);
//    STE through every rounding (train/clipquant.h; its range always contains 0, as quant/grid's does).
//    γ̃ = β̃ = 4 initially (σ = 0.982), lr 1e-2, 20 epochs, batch 1: the reference's defaults.
//  - LET, Learnable Equivalent Transformation (paper eq. 3-5), scale part only, optional (`let`): per input
//    channel s with Y = (X ⊘ s)·(s ⊙ W)ᵀ. Folded exactly, so nothing extra is stored or run:
//      input_layernorm → q,k,v          norm weight ⊘ s,  W_q,k,v columns ⊙ s
//      post_attention_layernorm → gate,up   norm weight ⊘ s,  W_gate,up columns ⊙ s
//      v_proj → o_proj                  W_v rows ⊘ s,  W_o columns ⊙ s (the value channel a column reads under
//                                       GQA; exact because attention mixes value rows with weights summing to 1)
//    s starts at SmoothQuant's max|x|^½ / max|w|^½ (the paper's init), lr 5e-3. Not done: LET's shift δ (an
//    RMSNorm has no bias to absorb it, and Llama's v/o carry no biases), up→down (the paper leaves the second FFN
//    Linear out), and the Q/K scaling (it only matters when activations are quantized). A group is used only when
//    every Linear it scales is targeted (v→o also needs a bias-free v_proj).
// Stored: QIntMatrix per targeted Linear (packed codes + f16 scale + u8 zero per group, the format GPTQ and RTN
// write) with exactly the codes/scales/zeros of the optimised forward; LET scales folded into norms/weights
// (Linears scaled but not targeted stay dense f32). Executed by the existing int kernels.
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "train/block_recon.h"

namespace lmp {

// LET scales of one block (empty vector = that transform is not applied).
struct LetScales {
  std::vector<float> attn;  // (C)       input_layernorm → q,k,v
  std::vector<float> mlp;   // (C)       post_attention_layernorm → gate,up
  std::vector<float> vo;    // (KV·hs)   v_proj → o_proj
};

// out = the float block `in` with the scales folded in (out may not alias in).
void let_transform(const train::BlockWeights& in, const LetScales& s, const ModelConfig& cfg, int layer,
                   train::BlockWeights& out);
// d(out) → ds (accumulated; ds shaped like s).
void let_backward(const train::BlockWeights& in, const LetScales& s, const ModelConfig& cfg, int layer,
                  const train::BlockWeights& dout, LetScales& ds);

std::unique_ptr<BlockModifier> make_omniquant_modifier(const nlohmann::json& stage);

}  // namespace lmp

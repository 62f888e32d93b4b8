// SignRound (Cheng, Zhang, Shen, Meng, Guo, Lv, Liu 2023, "Optimize Weight Rounding via Signed Gradient Descent
// for the Quantization of LLMs", arXiv 2309.05516; the auto-round method).
// Per weight a rounding offset V ∈ [−0.5, 0.5] decides whether w/s rounds up or down:
//     ŵ = s·(clamp(round(w/s + V) + z, 0, maxq) − z)
// and, with `minmax` (default on, as the reference's min/max tuning), per group factors α, β ∈ [0, 1] that scale
// the group's min and max before (s, z) are taken (train/clipquant.h: STE through every rounding). Block by block
// (train/block_recon.h) the block output MSE against the float block is minimised by signed gradient descent,
//     θ ← θ − lr·sign(∂L/∂θ),  lr = lr₀·(1 − t/T) (linear decay to 0), lr₀ = 1/T by default,
// V starting at 0 (= RTN) and α = β = 1, batches of 8 samples, T = 200 iterations; after every step V is clamped
// to [−0.5, 0.5] and α, β to [0, 1]; θ of the lowest batch loss seen is kept (the reference's best iteration).
// Signed descent is train/optim.h's Lion with β1 = 0 and no weight decay.
// Stored: QIntMatrix per targeted Linear with exactly the codes/scales/zeros of the optimised forward (the
// format RTN/GPTQ write; the offsets only change which code each weight gets), executed by the int kernels.
#pragma once
#include <memory>

#include "calib/pipeline.h"

namespace lmp {

std::unique_ptr<BlockModifier> make_signround_modifier(const nlohmann::json& stage);

}  // namespace lmp

// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers", arXiv 2210.17323). Quantizes W column by column in the OBS manner (calib/obs_solver):
// each column is rounded on the grid of quant/grid, and its rounding error is compensated on the columns not yet
// quantized through the Cholesky factor of the damped inverse Hessian H = 2/n·XᵀX.
// Stored: a QIntMatrix (packed b-bit codes + f16 scale + u8 zero per group), executed by the int kernels.
//  - Groups: a group's parameters are taken when the sweep reaches its first column, from the weights as they
//    stand then (the reference code's W, which within a lazy block does not yet carry the block's own updates).
//  - act-order (desc_act): columns processed by descending diag(H); groups stay contiguous ranges of the
//    original columns with parameters fixed before the sweep ("static groups"), so the stored format needs no
//    g_idx permutation and runs on the same kernels.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/qint.h"
#include "quant/grid.h"

namespace lmp {

struct GptqOptions {
  QuantGrid grid;
  double damp = 0.01;
  int block = 128;
  bool act_order = false;
};

struct GptqResult {
  std::unique_ptr<QIntMatrix> q;
  double loss = 0;       // Σ (w − q)² / [U]²_ii / 2
  double damp_used = 0;
};

// W (rows × cols) row-major; H (cols × cols). `what` names the layer in errors.
GptqResult gptq_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                         const GptqOptions& o, const std::string& what);

// grid (bits/group/sym/mse), damp, block, act_order of a recipe stage; shared by the GPTQ-based modifiers.
GptqOptions gptq_options_from_stage(const nlohmann::json& stage, const char* modifier);

std::unique_ptr<BlockModifier> make_gptq_modifier(const nlohmann::json& stage);

}  // namespace lmp

// QuIP (Chee, Cai, Kuleshov, De Sa 2023, "QuIP: 2-Bit Quantization of Large Language Models With Guarantees",
// arXiv 2307.13304) with the randomized-Hadamard incoherence processing of QuIP# (Tseng, Chee, Sun, Kuleshov,
// De Sa 2024, arXiv 2402.04396). Lattice codebooks (QuIP#'s E8P) are not done: W' is rounded on the scalar grid.
//   1. Incoherence: W' = U·W·Vᵀ with U = T_m, V = T_n the randomized Hadamard transforms of kernels/hadamard.h
//      (seeded per Linear). Outlier weights and outlier input directions are spread over all entries, so a
//      min–max grid wastes less range. The proxy loss tr(ΔW·H·ΔWᵀ) is invariant when the Hessian is carried
//      along: H' = V·H·Vᵀ (H = 2/n·XᵀX, x' = V x), computed in double.
//   2. LDLQ adaptive rounding of W' under H' — which is GPTQ's OBS column sweep (the QuIP paper's Theorem: LDLQ
//      and OPTQ/GPTQ are the same procedure), reused through gptq_quantize (calib/obs_solver), with its group
//      grid (per-row scales with --group 0, or groups of 32..256 columns of W').
// One-sided variant (output_transform = false, CLI --input-only): U = I, only the input side is rotated. The proxy
// loss weighs every output row alike; a two-sided rotation spreads the error of every output row over all of them,
// which on stories260K costs far more perplexity than the proxy says (bench/README.md, "QuIP# and OneBit").
// Stored: QuipMatrix (kernels/quip_matrix.h) = the QIntMatrix of W' + the two seeds (16 bytes); the forward
// runs x → V x (fast Walsh–Hadamard), the int kernels, y' → Uᵀ y'.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/quip_matrix.h"
#include "quant/gptq.h"

namespace lmp {

struct QuipOptions {
  GptqOptions gptq;
  uint64_t seed = 0;  // combined with each Linear's name into its two transform seeds
  bool output_transform = true;  // false: U = I (only the input side is made incoherent)
};

// μ(W) = max|W_ij| · √(m·n) / ‖W‖_F ∈ [1, √(mn)]: the incoherence of QuIP's definition (1 = perfectly flat).
double incoherence_mu(const float* W, int64_t rows, int64_t cols);

// W' = U W Vᵀ (rows × cols, row-major), in double; the scalar reference transforms.
std::vector<float> incoherent_weights(const float* W, int64_t rows, int64_t cols, const RandomHadamard& u,
                                      const RandomHadamard& v);
// H' = V H Vᵀ (cols × cols), in double.
std::vector<double> incoherent_hessian(const std::vector<double>& H, const RandomHadamard& v);

// The two seeds of the Linear named `what` (FNV-1a of the name mixed with o.seed), never 0 (0 = identity).
std::pair<uint64_t, uint64_t> quip_seeds(uint64_t seed, const std::string& what);

// W (rows × cols), H (cols × cols). Returns a QuipMatrix over GPTQ/LDLQ codes of W'.
std::unique_ptr<QuipMatrix> quip_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                          const QuipOptions& o, const std::string& what);

std::unique_ptr<BlockModifier> make_quip_modifier(const nlohmann::json& stage);

}  // namespace lmp

// SparseGPT (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
// One-Shot", ICML 2023, arXiv 2301.00774): the OBS column sweep of calib/obs_solver with a pruning step.
// In the paper's order (Algorithm 1), with H = 2/n·XᵀX + λI, U = Cholesky(H⁻¹)ᵀ (upper), lazy blocks of Bs:
//   for each block [i1, i1 + Bs):   mask M = the ⌊p·Bs⌋ lowest of  w²_rj / [U]²_jj  in each row r   (§3.3
//                                   "adaptive mask selection", per row as in models/README.md)
//   for each column j:              N:M: at j ≡ 0 (mod M), the M − N lowest w²/[U]²_jj of columns j..j+M−1
//                                   in each row are pruned (§3.4, scores from the current, updated weights)
//                                   q_j = 0 where pruned, else w_j (or its b-bit grid value, §3.5 joint
//                                   quantization: "50% + 4-bit")
//                                   err = (w_j − q_j)/[U]_jj ;  W[:, j:] −= err · U[j, j:]   (the sweep)
// Stored: f32 weights → prune/mask.h store_pruned (N:M format, SparseBitmap or dense);
// joint 4-bit: N:M → SparseNMQ4 (codes of kept values), unstructured → QIntMatrix (pruned codes = zero).
// Group parameters of the joint grid are taken when the sweep reaches a group's first column, from the
// weights as they stand then (the GPTQ/SparseGPT reference convention, see quant/gptq.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "prune/mask.h"
#include "quant/grid.h"

namespace lmp {

struct SparseGptOptions {
  SparsitySpec spec;
  double damp = 0.01;
  int block = 128;
  bool quantize = false;  // joint quantization of the kept weights on `grid`
  // ≥ 0 (unstructured only): exactly this many weights are pruned. SAMSP (prune/samsp.h) sets it from its
  // allocation. Spread ⌊total·i2/cols⌋ − ⌊total·i1/cols⌋ over lazy block [i1, i2); per row (total_rows: row r
  // gets ⌊total·(r+1)/rows⌋ − ⌊total·r/rows⌋, split over blocks the same way) or, with block_mask, as the
  // reference code's mask does (the lowest scores of the whole block, all rows together).
  int64_t prune_total = -1;
  bool block_mask = false;
  QuantGrid grid;
};

struct SparseGptResult {
  std::vector<float> W;        // (rows, cols) pruned and reconstructed (dequantized when quantizing)
  std::vector<uint8_t> codes;  // (rows, cols) grid codes, when quantizing
  std::vector<float> scales;   // (rows, ngroups)
  std::vector<uint8_t> zeros;  // (rows, ngroups)
  double loss = 0;             // Σ (w − q)² / [U]²_jj / 2
};

SparseGptResult sparsegpt_prune(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                const SparseGptOptions& o, const std::string& what);
// The stored form of a result (see the header comment).
WeightPtr sparsegpt_store(const SparseGptResult& r, int64_t rows, int64_t cols, const SparseGptOptions& o,
                          const StoreOptions& store, const std::string& what);

std::unique_ptr<BlockModifier> make_sparsegpt_modifier(const nlohmann::json& stage);

}  // namespace lmp

// TensorGPT (Xu, Xu & Mandic 2023, "TensorGPT: Efficient Compression of the Embedding Layer in LLMs based on
// the Tensor-Train Decomposition", arXiv:2307.00526): every token's embedding vector, reshaped into a
// d_1 × … × d_K tensor, is replaced by its tensor train (Matrix Product State) from TT-SVD (Oseledets 2011,
// "Tensor-Train Decomposition", SIAM J. Sci. Comput. 33(5)) with the TT-ranks capped at R. Training-free and
// data-free; only the embedding table changes.
//
// TT-SVD of one vector, sequentially: C ← v viewed (d_1, d_2⋯d_K); for j = 1..K−1: thin SVD C = U Σ Vᵀ
// (LAPACK, lowrank/truncated_svd.h), core j = U_{:, :r_j} viewed (r_{j−1}, d_j, r_j), C ← Σ_{:r_j} V_{:r_j}ᵀ
// viewed (r_j·d_{j+1}, d_{j+2}⋯d_K); the last core is C. Error: ‖v − TT(v)‖² ≤ Σ_j (σ² discarded at step j),
// with equality for K = 2 (one truncated SVD). Ranks are one profile for all tokens,
// r_j = min(R, d_1⋯d_j, d_{j+1}⋯d_K), so every token's cores have the same shapes.
//
// Stored: the cores in f32 as a TTRowsMatrix (kernels/tt_rows.h) in place of the dense table; the embedding
// lookup rebuilds only the looked-up rows. A tied LM head (stories260K) is the same stored matrix, executed
// by TTRowsMatrix::matmul (every vocabulary row rebuilt from its cores per call) — nothing dense is kept, so
// the bytes reported are what runs, and decode pays for the rebuild (bench/README.md measures it).
//
// Recipe stage: {"modifier": "tensorgpt", "tt_rank": R, "tt_shape": [d_1, ..., d_K]} (shape optional:
// default_tt_shape). CLI: `lmpress factorize --method tensorgpt --tt-rank R [--tt-shape 4,4,4]`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "calib/pipeline.h"
#include "kernels/tt_rows.h"

namespace lmp {

// Modes for a row of n values: factors of 4 while 4 divides what is left, then prime factors (64 → 4,4,4;
// 768 → 4,4,4,4,3).
std::vector<int64_t> default_tt_shape(int64_t n);
// r_0..r_K with r_j = min(max_rank, d_1⋯d_j, d_{j+1}⋯d_K).
std::vector<int64_t> tt_rank_profile(const std::vector<int64_t>& shape, int64_t max_rank);

// TT-SVD of v (Π shape values, row-major) with the rank profile above; cores[j] is r_{j−1} × d_j × r_j.
// discarded (optional) receives Σ of the σ² dropped over all steps (the error bound).
std::vector<std::vector<double>> tt_svd(const double* v, const std::vector<int64_t>& shape, int64_t max_rank,
                                        double* discarded = nullptr);

// Every row of E (rows × cols, row-major) through tt_svd; throws lmp::Error naming `what` when Π shape ≠ cols
// or max_rank < 1.
std::unique_ptr<TTRowsMatrix> tensorgpt_compress(const float* E, int64_t rows, int64_t cols,
                                                 const std::vector<int64_t>& shape, int64_t max_rank,
                                                 const std::string& what = "tensorgpt");

std::unique_ptr<BlockModifier> make_tensorgpt_modifier(const nlohmann::json& stage);

}  // namespace lmp

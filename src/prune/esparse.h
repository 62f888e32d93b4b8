// E-Sparse (Li, Niu, Zhang, Liu, Zhu, Kang 2023, "E-Sparse: Boosting the Large Language Model Inference
// Efficiency via Entropy-based N:M Sparsity", arXiv 2310.15929): Wanda's N:M pruning with
//   1. an entropy-augmented metric: the information entropy of each input channel's activation distribution
//      measures how much information the channel carries (§3.1):
//        H_j = −Σ_k p_jk · ln p_jk,   p_jk = share of channel j's calibration values in bin k of an equal-width
//                                     histogram over [−max|x_j|, max|x_j|] (`bins` bins)
//        ξ_ij = |W_ij| · (H_j + α · ‖X_j‖)      ‖X_j‖ = RMS of channel j over the T calibration tokens
//                                                (Wanda's ‖X_j‖₂ / √T, so α does not depend on T)
//   2. channel shuffling (§3.2) so that outlier channels do not crowd into the same groups of M, where N:M
//      would have to drop some of them: a permutation P of the input channels, N:M groups taken over W[:, P].
//        global naive shuffle: channels sorted by Σ_i ξ_ij, the channel of rank k goes to group k mod G (each
//                              group receives one channel of every importance band); kept only when it prunes
//                              less importance mass than no shuffle
//        local block shuffle:  inside blocks of `block` consecutive positions, greedy pairwise swaps between
//                              groups, each accepted only if it lowers the pruned mass Σ_{pruned} ξ_ij
//      so the pruned mass never exceeds that of no shuffle.
// Stored: the N:M format of the permuted matrix (kernels/sparse.h SparseNM) wrapped with its permutation
// (kernels/permuted.h PermutedInputMatrix, "perm_in"), which gathers x in that order before the N:M kernel.
// Without a shuffle (or when no swap helped) the plain N:M format is stored.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "calib/pipeline.h"
#include "prune/mask.h"

namespace lmp {

// Per-channel activation histograms (equal-width bins over [−range_j, range_j]; values outside clamp to the
// edge bins; range_j = 0 puts everything into one bin).
class ChannelHistograms {
 public:
  ChannelHistograms() = default;
  ChannelHistograms(const std::vector<float>& range, int bins);
  void add(const float* X, int64_t n);  // X (n, channels)
  std::vector<double> entropy() const;  // H_j in nats
  int64_t channels() const { return int64_t(range_.size()); }

 private:
  std::vector<float> range_;
  int bins_ = 0;
  std::vector<int64_t> counts_;  // (channels, bins)
};

// −Σ p ln p of a histogram (counts); 0 for an empty one.
double histogram_entropy(const int64_t* counts, int bins);

// ξ (rows × cols) = |W| · (H + α · rms).
std::vector<float> esparse_scores(const float* W, int64_t rows, int64_t cols, const std::vector<double>& entropy,
                                  const std::vector<double>& rms, double alpha);

// Σ of the scores N:M prunes from S (rows × cols) when groups are taken over columns in the order perm.
double nm_pruned_mass(const float* S, int64_t rows, int64_t cols, const std::vector<int32_t>& perm, NMPattern nm);

struct ShuffleOptions {
  bool global = true;  // global naive shuffle
  int block = 64;      // local block shuffle: positions per block (a multiple of M; 0 = off)
  int passes = 2;      // sweeps over each block's pairs
};
// The channel order (perm[j] = input channel at position j) for N:M pruning of scores S.
std::vector<int32_t> esparse_shuffle(const float* S, int64_t rows, int64_t cols, NMPattern nm,
                                     const ShuffleOptions& o);

std::unique_ptr<BlockModifier> make_esparse_modifier(const nlohmann::json& stage);

}  // namespace lmp

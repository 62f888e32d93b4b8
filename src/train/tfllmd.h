// TF-LLMD — Jha et al. 2023, "How To Train Your (Compressed) Large Language Model" (arXiv 2305.14864; later
// "Just CHOP: Embarrassingly Simple LLM Compression"). Task-agnostic compression of a decoder: the student is
// the teacher with whole blocks removed (layer truncation) and is then trained on generic text, either by
// continued language-model pre-training (cross-entropy, the paper's best recipe) or by distillation from the
// teacher (the baselines it compares against). What this file adds to `lmpress train distill` is the
// student's initialisation:
//   truncate-first      keep the first K blocks of the teacher (drop the top L − K)
//   truncate-alternate  keep K blocks evenly spread over the depth, first and last included
//                       (L = 5, K = 3 → blocks 0, 2, 4; every other block)
//   random              the truncate-first shape with every weight re-drawn (N(0, 0.02²) matrices and
//                       embedding, norms 1): the from-scratch control of the same size
// What is stored: the trained student, a dense model with K blocks (config.json's num_hidden_layers = K).
#pragma once
#include <string>
#include <vector>

#include "train/tmodel.h"

namespace lmp::train {

enum class StudentInit { TruncateFirst, TruncateAlternate, Random };
StudentInit parse_student_init(const std::string& s);  // throws lmp::Error listing the choices

// The source blocks to drop so that `keep` of `L` remain (ascending); throws unless 0 < keep ≤ L.
std::vector<int> truncation_drop_layers(int L, int keep, StudentInit init);

// Re-draws every parameter of tm: matrices and embedding ~ N(0, std²) (seeded), norm weights 1, biases 0.
template <class T>
void random_reinit(TrainModel<T>& tm, uint64_t seed, double std = 0.02);

}  // namespace lmp::train

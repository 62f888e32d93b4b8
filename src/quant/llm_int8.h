// LLM.int8() (Dettmers, Lewis, Belkada, Zettlemoyer 2022, "LLM.int8(): 8-bit Matrix Multiplication for
// Transformers at Scale", arXiv 2208.07339): input columns whose calibration max|x| exceeds `threshold`
// (6.0, the paper's) — or, with `outlier_frac` > 0, the top fraction of columns by max|x| (small models
// rarely reach 6) — stay in f16 as a small dense matrix; the rest is vector-wise int8 (per-row weight
// scale × per-token activation scale). Stored as an OutlierW8A8Matrix (kernels/w8a8_outlier.h).
#pragma once
#include <memory>
#include <vector>

#include "calib/pipeline.h"

namespace lmp {

// Outlier columns of one input: max|x_j| > threshold, or the ceil(frac · C) largest when frac > 0;
// at most C − 1 columns, ascending.
std::vector<int32_t> llm_int8_outliers(const std::vector<float>& act_max, double threshold, double frac);

std::unique_ptr<BlockModifier> make_llm_int8_modifier(const nlohmann::json& stage);

}  // namespace lmp

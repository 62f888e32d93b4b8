// The one table through which generic code reaches weight formats (load by name; list with sizes).
// A new format = one WeightMatrix class + one row in weight_registry.cpp.
#pragma once
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "kernels/weight.h"

namespace lmp {

struct WeightFormatInfo {
  const char* name;         // "f32", "f16", ...
  const char* description;  // one line for --help
  // Builds the matrix from "<prefix>.*" tensors and the spec written by WeightMatrix::save.
  WeightPtr (*load)(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);
};

const std::vector<WeightFormatInfo>& weight_formats();
// Throws lmp::Error naming src.where() when the format is unknown or tensors are missing/mis-shaped.
WeightPtr load_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);
// The inner matrix of a wrapper format (spec {"rows", "cols", "inner": spec}, tensors "<prefix>.inner.*"),
// checked against the spec's shape; `format` names the wrapper in errors.
WeightPtr load_inner_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec,
                            const char* format);
// A plain "<prefix>.weight" tensor of dtype F32/F16/BF16 (HF checkpoints): zero-copy for F32/F16.
WeightPtr load_dense_weight(const TensorSource& src, const std::string& prefix);
// Loaders' check of one stored tensor: throws lmp::Error naming src.where() unless t is dtype d of this shape.
void expect_tensor(const TensorSource& src, const TensorView& t, DType d, const std::vector<int64_t>& shape);
// src.get(name) checked by expect_tensor; its bytes.
const uint8_t* stored_tensor(const TensorSource& src, const std::string& name, DType d,
                             const std::vector<int64_t>& shape);

}  // namespace lmp

// A weight matrix stored in one of ggml's block formats (as a GGUF tensor holds it), executed without a
// full f32 copy: matmul dequantizes a tile of rows at a time into a small f32 buffer and runs the dense
// kernels on it. Saved as the raw blocks in one U8 safetensors tensor "<prefix>.weight" of shape
// (rows, row bytes) with spec {"format": "ggml", "type": "<ggml type name>"}.
#pragma once
#include <memory>
#include <vector>

#include "kernels/ggml_blocks.h"
#include "kernels/weight.h"

namespace lmp {

class GgmlBlockMatrix final : public WeightMatrix {
 public:
  // Borrows rows × (cols / block_size) blocks at data; keeper keeps them alive (e.g. the mapped GGUF file).
  GgmlBlockMatrix(GgmlType type, int64_t rows, int64_t cols, const void* data, std::shared_ptr<const void> keeper);
  // Owns the blocks.
  GgmlBlockMatrix(GgmlType type, int64_t rows, int64_t cols, std::vector<uint8_t> blocks);
  // Quantizes W (rows × cols, row-major) with the type's reference quantizer; throws lmp::Error when the
  // type has none or cols is not a multiple of the block size.
  static std::unique_ptr<GgmlBlockMatrix> quantize(GgmlType type, int64_t rows, int64_t cols, const float* W);

  std::string format() const override { return "ggml"; }
  size_t nbytes() const override { return size_t(rows()) * row_bytes_; }
  void matmul(const float* X, int64_t n, float* Y) const override;
  void dequantize(float* W) const override;
  nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const override;

  GgmlType type() const { return traits_->type; }
  const GgmlTypeTraits& traits() const { return *traits_; }
  const uint8_t* data() const { return data_; }
  size_t row_bytes() const { return row_bytes_; }
  void dequantize_row(int64_t r, float* y) const { traits_->to_float(data_ + size_t(r) * row_bytes_, y, cols()); }

 private:
  const GgmlTypeTraits* traits_;
  size_t row_bytes_;
  std::vector<uint8_t> own_;
  std::shared_ptr<const void> keeper_;
  const uint8_t* data_;
};

// The natural WeightMatrix for a ggml tensor of shape (rows, cols): zero-copy DenseF32 / DenseF16 for
// f32 / f16; for Q4_0 / Q8_0 a QIntMatrix int4/int8_g32_sym holding the same codes and scales (the same
// math, ŵ = (q − 2^(b−1))·d, dequantized bit-identically, run on lmpress's int kernels; exported back to the
// same bytes); GgmlBlockMatrix for every other block type (and bf16). data must hold rows * row_size bytes.
WeightPtr make_ggml_weight(GgmlType type, int64_t rows, int64_t cols, const void* data,
                           std::shared_ptr<const void> keeper);

// Registry loader for {"format": "ggml", "type": ...} (row in weight_registry.cpp).
WeightPtr load_ggml_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec);

}  // namespace lmp

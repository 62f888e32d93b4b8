// A stored weight matrix W of shape (rows = out_features, cols = in_features) in some format, and the
// one operation the model needs from it: Y = X · Wᵀ. Every compressed Linear (dense f32/f16, group-wise
// integer, sparse, low-rank, ...) is one implementation; formats are registered by name in
// kernels/weight_registry so that loading and saving reach them through one table.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmp {

class SafeTensorsWriter;
struct TensorView;

class WeightMatrix {
 public:
  WeightMatrix(int64_t rows, int64_t cols) : rows_(rows), cols_(cols) {}
  virtual ~WeightMatrix() = default;
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }

  virtual std::string format() const = 0;  // registry name, e.g. "f32", "f16", "int4_g128_asym"
  virtual size_t nbytes() const = 0;       // bytes as stored, all side data (scales, zeros, indices) included
  // Parameters actually stored: rows·cols for dense and quantized formats, kept values for sparse ones,
  // k·(rows + cols) for low-rank factors.
  virtual int64_t n_params() const { return rows_ * cols_; }
  // Y (n, rows) = X (n, cols) · Wᵀ ; Y is overwritten. X rows are contiguous with stride cols.
  virtual void matmul(const float* X, int64_t n, float* Y) const = 0;
  // Dense f32 values (rows × cols, row-major) that matmul computes with.
  virtual void dequantize(float* W) const = 0;
  // Row r of those values (cols floats). Formats that can rebuild one row cheaply override it (a compressed
  // embedding table is read this way, one token at a time); the default dequantizes the whole matrix.
  virtual void dequantize_row(int64_t r, float* out) const {
    std::vector<float> W = dense();
    std::copy_n(W.data() + r * cols_, cols_, out);
  }
  // True when dequantize_row reads only that row's data (a stored embedding table is then looked up from the
  // format itself; otherwise the model keeps a dense f32 copy for lookups).
  virtual bool row_lookup() const { return false; }
  // Writes this matrix's tensors as "<prefix>.<part>" and returns the JSON spec that load needs
  // ({"format": ..., other parameters}); the spec goes into the model's quantization_config.
  virtual nlohmann::json save(SafeTensorsWriter& w, const std::string& prefix) const = 0;

  double bits_per_weight() const { return 8.0 * double(nbytes()) / double(rows_ * cols_); }
  std::vector<float> dense() const {
    std::vector<float> W(size_t(rows_ * cols_));
    dequantize(W.data());
    return W;
  }

 private:
  int64_t rows_, cols_;
};

using WeightPtr = std::unique_ptr<WeightMatrix>;

// Looks up "<prefix>.<part>" tensors; throws lmp::Error naming the file when absent.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual const TensorView& get(const std::string& name) const = 0;
  virtual bool has(const std::string& name) const = 0;
  virtual std::string where() const = 0;  // file or directory, for error messages
  // Keeps the memory behind the views alive; zero-copy formats hold it.
  virtual std::shared_ptr<const void> keeper() const = 0;
};

}  // namespace lmp

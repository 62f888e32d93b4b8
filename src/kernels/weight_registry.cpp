#include "kernels/weight_registry.h"

#include <deque>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/colsplit.h"
#include "kernels/dense.h"
#include "kernels/fp_act.h"
#include "kernels/ggml_blocks_matrix.h"
#include "kernels/lowrank.h"
#include "kernels/tt_rows.h"
#include "kernels/lut.h"
#include "kernels/olive.h"
#include "kernels/permuted.h"
#include "kernels/qint.h"
#include "kernels/quip_matrix.h"
#include "kernels/onebit.h"
#include "kernels/residual.h"
#include "kernels/shifted.h"
#include "kernels/w4a8.h"
#include "kernels/sparse.h"
#include "kernels/spqr_format.h"
#include "kernels/lowbit_float.h"
#include "kernels/qint.h"
#include "kernels/w8a8.h"
#include "kernels/w8a8_outlier.h"

namespace lmp {

static void expect_shape(const TensorSource& src, const TensorView& t, int64_t rows, int64_t cols) {
  check(t.shape.size() == 2 && t.shape[0] == rows && t.shape[1] == cols, "{}: tensor {} has shape [{}], want [{}, {}]",
        src.where(), t.name, fmt::join(t.shape, ", "), rows, cols);
}

void expect_tensor(const TensorSource& src, const TensorView& t, DType d, const std::vector<int64_t>& shape) {
  check(t.dtype == d && t.shape == shape, "{}: tensor {} is {} [{}], want {} [{}]", src.where(), t.name,
        dtype_name(t.dtype), fmt::join(t.shape, ", "), dtype_name(d), fmt::join(shape, ", "));
}

const uint8_t* stored_tensor(const TensorSource& src, const std::string& name, DType d,
                             const std::vector<int64_t>& shape) {
  const TensorView& t = src.get(name);
  expect_tensor(src, t, d, shape);
  return t.data;
}

WeightPtr load_dense_weight(const TensorSource& src, const std::string& prefix) {
  const TensorView& t = src.get(prefix + ".weight");
  check(t.shape.size() == 2, "{}: tensor {} is not a matrix (rank {})", src.where(), t.name, t.shape.size());
  int64_t rows = t.shape[0], cols = t.shape[1];
  switch (t.dtype) {
    case DType::F32:
      return std::make_unique<DenseF32>(rows, cols, reinterpret_cast<const float*>(t.data), src.keeper());
    case DType::F16:
      return std::make_unique<DenseF16>(rows, cols, reinterpret_cast<const f16_t*>(t.data), src.keeper());
    case DType::BF16:
    case DType::F64:
      return std::make_unique<DenseF32>(rows, cols, t.to_f32());
    default:
      fail("{}: tensor {} has dtype {}, want F32, F16 or BF16", src.where(), t.name, dtype_name(t.dtype));
  }
}

static WeightPtr load_f32(const TensorSource& src, const std::string& prefix, const nlohmann::json&) {
  return load_dense_weight(src, prefix);
}

static WeightPtr load_f16(const TensorSource& src, const std::string& prefix, const nlohmann::json&) {
  const TensorView& t = src.get(prefix + ".weight");
  check(t.dtype == DType::F16, "{}: tensor {} has dtype {}, format f16 wants F16", src.where(), t.name,
        dtype_name(t.dtype));
  check(t.shape.size() == 2, "{}: tensor {} is not a matrix", src.where(), t.name);
  expect_shape(src, t, t.shape[0], t.shape[1]);
  return std::make_unique<DenseF16>(t.shape[0], t.shape[1], reinterpret_cast<const f16_t*>(t.data), src.keeper());
}

const std::vector<WeightFormatInfo>& weight_formats() {
  static const std::vector<WeightFormatInfo> table = [] {
    std::vector<WeightFormatInfo> t = {
        {"f32", "dense float32, 32 bits/weight", load_f32},
        {"f16", "dense IEEE half, 16 bits/weight", load_f16},
        {"llm_int8", "LLM.int8(): outlier input columns in f16 + the rest int8 per row x per-token int8 activations",
         load_llm_int8},
        {"ggml", "llama.cpp/GGUF block format {\"type\": \"q4_K\", ...} (raw blocks, 2.6-8.5 bits/weight)", load_ggml_weight},
        {"lowrank", "low-rank factors A (m x k) . B (k x n), each in its own format {\"a\": spec, \"b\": spec}", load_lowrank},
        {"tt_rows", "TensorGPT: every row a tensor train (TT cores per row, f32), rebuilt row by row", load_tt_rows},
        {"lut", "SqueezeLLM: b-bit codes + f16 lookup table (2^b centroids) per row, optional sparse side matrix", load_lut},
        {"colsplit", "OWQ: kept input columns in f16 + the rest in any format {\"rest\": spec}", load_colsplit},
        {"perm_in", "E-Sparse: input channels gathered in a stored order, then any format {\"inner\": spec} (N:M)",
         load_permuted},
        {"bcq", "BCQ / LUT-GEMM: q sign bit-planes + f16 alpha per (plane, row, group), LUT-GEMM kernel", load_bcq},
        {"spqr", "SpQR: b-bit codes in small groups, 3-bit quantized scales/zeros (f16 second level) + CSR f16 outliers",
         load_spqr},
        {"quip", "QuIP: U W V^T (randomized Hadamard, 2 seeds) in any format {\"inner\": spec}, fast WHT on x and y", load_quip},
        {"onebit", "OneBit: packed sign bits + f16 row scale g + f16 column scale h, y = g * (Sign (h * x))", load_onebit},
        {"residual", "base + correction, each in its own format {\"base\": spec, \"corr\": spec} (LoRC, QuantEase outliers)",
         load_residual},
        {"fp_act", "ZeroQuant-FP: dynamic per-token FP8 activations in front of any weight format {\"act\": \"e4m3\", \"w\": spec}",
         load_fp_act},
        {"shift", "Outlier Suppression+: per-channel input shift (f32) before any format {\"inner\": spec}; bias compensates",
         load_shifted},
    };
    // Group-wise integer formats (kernels/qint.h), one row per (bits, group, sym); bits/weight at 4096 cols.
    static std::deque<std::string> text;  // backs the const char* fields
    for (const QuantGrid& g : QIntMatrix::all_grids()) {
      double gs = g.group ? g.group : 4096, bpw = g.bits + (16.0 + (g.sym ? 0 : 8)) / gs;
      text.push_back(QIntMatrix::format_name(g));
      const char* name = text.back().c_str();
      text.push_back(fmt::format("group-wise int{}, {}, {}, {:.3f} bits/weight", g.bits,
                                 g.group ? fmt::format("group {}", g.group) : std::string("one group per row"),
                                 g.sym ? "symmetric" : "asymmetric (u8 zeros)", bpw));
      t.push_back({name, text.back().c_str(), load_qint});
    }
    // OliVe outlier-victim pairs (kernels/olive.h).
    for (int g : {128, 32, 64, 256, 0}) {
      text.push_back(OliveMatrix::format_name(g));
      const char* name = text.back().c_str();
      text.push_back(fmt::format("OliVe 4-bit outlier-victim pairs, f16 scale per {}, {:.3f} bits/weight",
                                 g ? fmt::format("group of {}", g) : std::string("row"), 4 + 16.0 / (g ? g : 4096)));
      t.push_back({name, text.back().c_str(), load_olive});
    }
    // W4A8 (kernels/w4a8.h): the int4 formats with per-token int8 activations (FPTQ).
    for (const QuantGrid& g : QIntMatrix::all_grids()) {
      if (g.bits != 4) continue;
      text.push_back(W4A8Matrix::format_name(g));
      const char* name = text.back().c_str();
      text.push_back(fmt::format("int4 weights ({}) x dynamic per-token int8 activations", QIntMatrix::format_name(g)));
      t.push_back({name, text.back().c_str(), load_w4a8});
    }
    for (const WeightFormatInfo& f : sparse_weight_formats()) t.push_back(f);  // kernels/sparse.h
    // W8A8 (kernels/w8a8.h): int8 weights per row or group, int8 per-token activations, int32 accumulation.
    for (int g : W8A8Matrix::all_groups()) {
      text.push_back(W8A8Matrix::format_name(g));
      const char* name = text.back().c_str();
      text.push_back(fmt::format("int8 weights ({}) x dynamic per-token int8 activations, {:.3f} bits/weight",
                                 g ? fmt::format("group {}", g) : std::string("per row"), 8 + 16.0 / (g ? g : 4096)));
      t.push_back({name, text.back().c_str(), load_w8a8});
    }
    // FP8 E4M3/E5M2 and FP4 E2M1 codes with f16 group scales (kernels/lowbit_float.h).
    for (auto [f, g] : LowFloatMatrix::all_formats()) {
      text.push_back(LowFloatMatrix::format_name(f, g));
      const char* name = text.back().c_str();
      const int b = lowfloat_spec(f).bits();
      text.push_back(fmt::format("FP{} {} codes, f16 scale per {}, {:.3f} bits/weight", b, lowfloat_spec(f).name,
                                 g ? fmt::format("group of {}", g) : std::string("row"), b + 16.0 / (g ? g : 4096)));
      t.push_back({name, text.back().c_str(), load_lowfloat});
    }
    return t;
  }();
  return table;
}

WeightPtr load_inner_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec,
                            const char* format) {
  int64_t rows = 0, cols = 0;
  nlohmann::json inner;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    inner = spec.at("inner");
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: {} spec {} lacks rows/cols/inner ({})", src.where(), prefix, format, spec.dump(), e.what());
  }
  WeightPtr in = load_weight(src, prefix + ".inner", inner);
  check(in->rows() == rows && in->cols() == cols, "{}: {}: {} inner matrix is [{}, {}], spec says [{}, {}]",
        src.where(), prefix, format, in->rows(), in->cols(), rows, cols);
  return in;
}

WeightPtr load_weight(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  std::string name = spec.value("format", "f32");
  for (const auto& f : weight_formats())
    if (name == f.name) return f.load(src, prefix, spec);
  fail("{}: {} uses unknown weight format '{}'", src.where(), prefix, name);
}

}  // namespace lmp

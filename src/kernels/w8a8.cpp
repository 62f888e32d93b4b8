#include "kernels/w8a8.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/weight_registry.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// W8A8Matrix

bool W8A8Matrix::supported_group(int g) { return g == 0 || g == 32 || g == 64 || g == 128 || g == 256; }

const std::vector<int>& W8A8Matrix::all_groups() {
  static const std::vector<int> g = {0, 32, 64, 128, 256};
  return g;
}

std::string W8A8Matrix::format_name(int group) {
  return group == 0 ? std::string("w8a8_row") : fmt::format("w8a8_g{}", group);
}

W8A8Matrix::W8A8Matrix(int64_t rows, int64_t cols, int group) : WeightMatrix(rows, cols), group_(group) {
  check(supported_group(group), "W8A8Matrix: unsupported group {}", group);
  check(rows > 0 && cols > 0, "W8A8Matrix: empty {}x{} matrix", rows, cols);
  own_qw_.assign(size_t(npanels() * nchunks() * 64), 0);
  own_sc_.assign(size_t(rows * ngroups()), 0);
  qw_ = own_qw_.data();
  sc_ = own_sc_.data();
}

W8A8Matrix::W8A8Matrix(int64_t rows, int64_t cols, int group, const int8_t* qweight, const f16_t* scales,
                       std::shared_ptr<const void> keeper)
    : WeightMatrix(rows, cols), group_(group), keeper_(std::move(keeper)), qw_(qweight), sc_(scales) {
  check(supported_group(group), "W8A8Matrix: unsupported group {}", group);
  derive();
}

void W8A8Matrix::derive() {
  const int64_t ng = ngroups(), gs = group_size();
  pscale_.assign(size_t(npanels() * ng * W8_PANEL), 0.0f);
  pcorr_.assign(pscale_.size(), 0);
  for (int64_t r = 0; r < rows(); r++)
    for (int64_t g = 0; g < ng; g++) {
      int32_t s = 0;
      for (int64_t c = g * gs; c < std::min(cols(), (g + 1) * gs); c++) s += code(r, c);
      size_t i = size_t(((r / W8_PANEL) * ng + g) * W8_PANEL + r % W8_PANEL);
      pscale_[i] = scale(r, g);
      pcorr_[i] = 128 * s;
    }
}

std::unique_ptr<W8A8Matrix> W8A8Matrix::quantize(int64_t rows, int64_t cols, const float* W, int group) {
  std::unique_ptr<W8A8Matrix> m(new W8A8Matrix(rows, cols, group));
  const int64_t ng = m->ngroups(), gs = m->group_size(), nc = m->nchunks();
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < ng; g++) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      float amax = 0;
      for (int64_t c = c0; c < c1; c++) amax = std::max(amax, std::fabs(W[r * cols + c]));
      const float s = f16_ceil(amax / 127.0f);
      m->own_sc_[size_t(r * ng + g)] = f32_to_f16(s);
      for (int64_t c = c0; c < c1; c++) {
        int q = std::clamp(int(std::nearbyint(W[r * cols + c] / s)), -127, 127);
        m->own_qw_[size_t(((r / W8_PANEL) * nc + c / W8_KC) * 64 + (r % W8_PANEL) * 4 + c % W8_KC)] = int8_t(q);
      }
    }
  m->derive();
  return m;
}

size_t W8A8Matrix::nbytes() const { return size_t(npanels() * nchunks() * 64) + size_t(rows() * ngroups()) * 2; }

void W8A8Matrix::dequantize(float* W) const {
  const int64_t gs = group_size();
  for (int64_t r = 0; r < rows(); r++)
    for (int64_t c = 0; c < cols(); c++) W[r * cols() + c] = float(code(r, c)) * scale(r, c / gs);
}

nlohmann::json W8A8Matrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".qweight", DType::I8, {npanels(), nchunks() * 64}, qw_, size_t(npanels() * nchunks() * 64));
  w.add(prefix + ".scales", DType::F16, {rows(), ngroups()}, sc_, size_t(rows() * ngroups()) * 2);
  return {{"format", format()}, {"group", group_}, {"rows", rows()}, {"cols", cols()}, {"layout", "p16k4"}};
}

WeightPtr load_w8a8(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int group = 0;
  int64_t rows = 0, cols = 0;
  try {
    group = spec.at("group").get<int>();
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: w8a8 spec {} lacks group/rows/cols ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(W8A8Matrix::supported_group(group) && rows > 0 && cols > 0, "{}: {}: unsupported w8a8 spec {}", src.where(),
        prefix, spec.dump());
  check(spec.value("format", "") == W8A8Matrix::format_name(group), "{}: {}: spec {} names format '{}', want '{}'",
        src.where(), prefix, spec.dump(), spec.value("format", ""), W8A8Matrix::format_name(group));
  check(spec.value("layout", "") == "p16k4", "{}: {}: unknown w8a8 layout in {}", src.where(), prefix, spec.dump());
  const int64_t P = (rows + W8_PANEL - 1) / W8_PANEL, K4 = (cols + W8_KC - 1) / W8_KC;
  const int64_t gs = group > 0 ? group : cols, ng = (cols + gs - 1) / gs;
  auto get = [&](const char* part, DType dt, int64_t r, int64_t c) {
    return stored_tensor(src, prefix + "." + part, dt, {r, c});
  };
  const uint8_t* qw = get("qweight", DType::I8, P, K4 * 64);
  const uint8_t* sc = get("scales", DType::F16, rows, ng);
  return std::make_unique<W8A8Matrix>(rows, cols, group, reinterpret_cast<const int8_t*>(qw),
                                      reinterpret_cast<const f16_t*>(sc), src.keeper());
}

// ---------------------------------------------------------------------------------------------------
// Activations, reference, dispatch

void w8_quantize_tokens(const float* X, int64_t n, int64_t cols, bool shifted, W8Acts* a) {
  const int64_t c4 = (cols + W8_KC - 1) / W8_KC * W8_KC;
  a->n = n, a->cols4 = c4, a->shifted = shifted;
  a->xq.resize(size_t(n * c4));
  a->d.resize(size_t(n));
  const int off = shifted ? 128 : 0;
#pragma omp parallel for schedule(static) if (n * cols > 65536)
  for (int64_t t = 0; t < n; t++) {
    const float* x = X + t * cols;
    uint8_t* q = a->xq.data() + t * c4;
    float amax = 0;
    for (int64_t c = 0; c < cols; c++) amax = std::max(amax, std::fabs(x[c]));
    const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
    for (int64_t c = 0; c < cols; c++) q[c] = uint8_t(std::clamp(int(std::nearbyint(x[c] * id)), -127, 127) + off);
    for (int64_t c = cols; c < c4; c++) q[c] = uint8_t(off);
    a->d[size_t(t)] = d;
  }
}

W8A8View w8a8_view(const W8A8Matrix& m) {
  return {m.rows(), m.cols(), m.nchunks(), m.ngroups(), (m.group_size() + W8_KC - 1) / W8_KC,
          m.qweight(), m.panel_scales(), m.panel_corr()};
}

// I (n, ngroups, rows) by plain loops over the unshifted codes, in int64.
static void int_ref(const W8A8Matrix& m, const W8Acts& a, int32_t* Yi) {
  const int64_t ng = m.ngroups(), gs = m.group_size();
  for (int64_t t = 0; t < a.n; t++) {
    const int8_t* x = reinterpret_cast<const int8_t*>(a.x(t));
    for (int64_t g = 0; g < ng; g++)
      for (int64_t r = 0; r < m.rows(); r++) {
        int64_t s = 0;
        for (int64_t c = g * gs; c < std::min(m.cols(), (g + 1) * gs); c++) s += int64_t(m.code(r, c)) * x[c];
        Yi[(t * ng + g) * m.rows() + r] = int32_t(s);
      }
  }
}

static W8A8PanelsKernel kernel_for(QIntIsa isa, bool grouped, bool ints) {
  return isa == QIntIsa::Avx512 ? w8a8_kernel_avx512(grouped, ints) : w8a8_kernel_avx2(grouped, ints);
}

// Threads over tasks of 4 panels (64 rows).
static void run_kernel(W8A8PanelsKernel k, const W8A8Matrix& m, const W8Acts& a, W8Out out) {
  const W8A8View v = w8a8_view(m);
  const int64_t P = m.npanels(), tile = 4, ntiles = (P + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (m.rows() * m.cols() * a.n > 65536)
  for (int64_t i = 0; i < ntiles; i++) k(v, a, out, i * tile, std::min(P, (i + 1) * tile));
}

void w8a8_int(const W8A8Matrix& m, const float* X, int64_t n, QIntIsa isa, int32_t* Yi) {
  check(isa != QIntIsa::Avx512 || qint_best_isa() == QIntIsa::Avx512, "w8a8: this CPU lacks AVX-512 VNNI");
  W8Acts a;
  w8_quantize_tokens(X, n, m.cols(), isa == QIntIsa::Avx512, &a);
  if (isa == QIntIsa::Scalar) return int_ref(m, a, Yi);
  run_kernel(kernel_for(isa, m.ngroups() > 1, true), m, a, W8Out{nullptr, Yi});
}

void w8a8_matmul_ref(const W8A8Matrix& m, const float* X, int64_t n, float* Y) {
  W8Acts a;
  w8_quantize_tokens(X, n, m.cols(), false, &a);
  const int64_t ng = m.ngroups(), R = m.rows();
  std::vector<int32_t> I(size_t(n * ng * R));
  int_ref(m, a, I.data());
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double y = 0;
      for (int64_t g = 0; g < ng; g++) y += double(m.scale(r, g)) * I[size_t((t * ng + g) * R + r)];
      Y[t * R + r] = float(double(a.d[size_t(t)]) * y);
    }
}

void W8A8Matrix::matmul(const float* X, int64_t n, float* Y) const {
  const QIntIsa isa = qint_isa();
  if (isa == QIntIsa::Scalar) return w8a8_matmul_ref(*this, X, n, Y);
  thread_local W8Acts a;  // reused between calls: no allocation per decoded token
  w8_quantize_tokens(X, n, cols(), isa == QIntIsa::Avx512, &a);
  run_kernel(kernel_for(isa, ngroups() > 1, false), *this, a, W8Out{Y, nullptr});
}

}  // namespace lmp

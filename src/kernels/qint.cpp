#include "kernels/qint.h"

#include <cblas.h>
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
// Block packing (the layout definitions; SIMD unpackers in qint_avx2/avx512.cpp must agree)

static void pack2(const uint8_t* q, uint8_t* qs /*16*/) {
  for (int j = 0; j < 16; j++)
    qs[j] = uint8_t((q[j] & 3) | (q[16 + j] & 3) << 2 | (q[32 + j] & 3) << 4 | (q[48 + j] & 3) << 6);
}
static void unpack2(const uint8_t* qs, uint8_t* q) {
  for (int j = 0; j < 16; j++)
    for (int k = 0; k < 4; k++) q[16 * k + j] = (qs[j] >> (2 * k)) & 3;
}

void qblock_pack(int bits, const uint8_t* q, uint8_t* block) {
  switch (bits) {
    case 2: return pack2(q, block);
    case 3: {
      pack2(q, block);  // bits 0..1 (pack2 masks)
      uint64_t h = 0;
      for (int j = 0; j < QK; j++) h |= uint64_t((q[j] >> 2) & 1) << j;
      for (int i = 0; i < 8; i++) block[16 + i] = uint8_t(h >> (8 * i));
      return;
    }
    case 4:
      for (int j = 0; j < 32; j++) block[j] = uint8_t((q[j] & 15) | (q[32 + j] & 15) << 4);
      return;
    case 8: std::memcpy(block, q, QK); return;
  }
  fail("qblock_pack: {} bits unsupported", bits);
}

void qblock_unpack(int bits, const uint8_t* block, uint8_t* q) {
  switch (bits) {
    case 2: return unpack2(block, q);
    case 3:
      unpack2(block, q);
      for (int j = 0; j < QK; j++) q[j] |= uint8_t(((block[16 + j / 8] >> (j % 8)) & 1) << 2);
      return;
    case 4:
      for (int j = 0; j < 32; j++) q[j] = block[j] & 15, q[32 + j] = block[j] >> 4;
      return;
    case 8: std::memcpy(q, block, QK); return;
  }
  fail("qblock_unpack: {} bits unsupported", bits);
}

// ---------------------------------------------------------------------------------------------------
// QIntMatrix

bool QIntMatrix::supported(const QuantGrid& g) {
  bool bits_ok = g.bits == 2 || g.bits == 3 || g.bits == 4 || g.bits == 8;
  bool group_ok = g.group == 0 || g.group == 32 || g.group == 64 || g.group == 128 || g.group == 256;
  return bits_ok && group_ok;
}

std::string QIntMatrix::format_name(const QuantGrid& g) {
  std::string grp = g.group == 0 ? "row" : fmt::format("g{}", g.group);
  return fmt::format("int{}_{}_{}", g.bits, grp, g.sym ? "sym" : "asym");
}

const std::vector<QuantGrid>& QIntMatrix::all_grids() {
  static const std::vector<QuantGrid> grids = [] {
    std::vector<QuantGrid> v;
    for (int bits : {4, 8, 3, 2})
      for (int group : {128, 32, 64, 256, 0})
        for (bool sym : {false, true}) v.push_back(QuantGrid{.bits = bits, .sym = sym, .group = group});
    return v;
  }();
  return grids;
}

QIntMatrix::QIntMatrix(int64_t rows, int64_t cols, const QuantGrid& grid) : WeightMatrix(rows, cols), grid_(grid) {
  check(supported(grid), "QIntMatrix: unsupported grid {} bits, group {}", grid.bits, grid.group);
  check(rows > 0 && cols > 0, "QIntMatrix: empty {}x{} matrix", rows, cols);
  own_codes_.assign(size_t(rows * row_bytes()), 0);  // padding codes are zero
  own_scales_.assign(size_t(rows * ngroups()), 0);
  if (!grid.sym) own_zeros_.assign(size_t(rows * ngroups()), 0);
  codes_ = own_codes_.data();
  scales_ = own_scales_.data();
  zeros_ = grid.sym ? nullptr : own_zeros_.data();
}

QIntMatrix::QIntMatrix(int64_t rows, int64_t cols, const QuantGrid& grid, const uint8_t* codes, const f16_t* scales,
                       const uint8_t* zeros, std::shared_ptr<const void> keeper)
    : WeightMatrix(rows, cols), grid_(grid), keeper_(std::move(keeper)), codes_(codes), scales_(scales),
      zeros_(grid.sym ? nullptr : zeros) {
  check(supported(grid), "QIntMatrix: unsupported grid {} bits, group {}", grid.bits, grid.group);
  check(grid.sym || zeros, "QIntMatrix: asymmetric format without zeros");
}

std::unique_ptr<QIntMatrix> QIntMatrix::from_codes(int64_t rows, int64_t cols, const QuantGrid& grid,
                                                   const uint8_t* q, const float* scales, const uint8_t* zeros) {
  std::unique_ptr<QIntMatrix> m(new QIntMatrix(rows, cols, grid));
  const int maxq = grid.maxq();
  const int64_t ng = m->ngroups(), nb = m->nblk(), rb = m->row_bytes(), bb = qblock_bytes(grid.bits);
  check(grid.sym || zeros, "QIntMatrix::from_codes: asymmetric grid needs zeros");
  for (int64_t i = 0; i < rows * ng; i++) {
    m->own_scales_[i] = f32_to_f16(scales[i]);
    if (!grid.sym) {
      check(zeros[i] <= maxq, "QIntMatrix::from_codes: zero {} out of [0, {}]", zeros[i], maxq);
      m->own_zeros_[i] = zeros[i];
    }
  }
  uint8_t buf[QK];
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t b = 0; b < nb; b++) {
      int64_t c0 = b * QK, len = std::min<int64_t>(QK, cols - c0);
      std::memset(buf, 0, QK);
      for (int64_t i = 0; i < len; i++) {
        uint8_t v = q[r * cols + c0 + i];
        check(v <= maxq, "QIntMatrix::from_codes: code {} at ({}, {}) out of [0, {}]", v, r, c0 + i, maxq);
        buf[i] = v;
      }
      qblock_pack(grid.bits, buf, m->own_codes_.data() + r * rb + b * bb);
    }
  }
  return m;
}

std::unique_ptr<QIntMatrix> QIntMatrix::quantize(int64_t rows, int64_t cols, const float* W, const QuantGrid& grid) {
  check(supported(grid), "QIntMatrix: unsupported grid {} bits, group {}", grid.bits, grid.group);
  const int64_t gs = grid.group_size(cols), ng = grid.ngroups(cols);
  std::vector<uint8_t> q(size_t(rows * cols)), zeros(size_t(rows * ng));
  std::vector<float> scales(size_t(rows * ng));
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t g = 0; g < ng; g++) {
      int64_t c0 = g * gs, len = std::min(gs, cols - c0);
      GroupParams p = find_params(W + r * cols + c0, len, grid);
      quantize_group(W + r * cols + c0, len, p, grid.bits, q.data() + r * cols + c0);
      scales[r * ng + g] = p.scale;
      zeros[r * ng + g] = uint8_t(p.zero);
    }
  }
  return from_codes(rows, cols, grid, q.data(), scales.data(), grid.sym ? nullptr : zeros.data());
}

size_t QIntMatrix::nbytes() const {
  size_t n = size_t(rows() * row_bytes()) + size_t(rows() * ngroups()) * 2;
  if (!grid_.sym) n += size_t(rows() * ngroups());
  return n;
}

void QIntMatrix::unpack_row(int64_t r, uint8_t* q) const {
  uint8_t buf[QK];
  const int bb = qblock_bytes(grid_.bits);
  for (int64_t b = 0; b < nblk(); b++) {
    qblock_unpack(grid_.bits, codes_ + r * row_bytes() + b * bb, buf);
    int64_t c0 = b * QK, len = std::min<int64_t>(QK, cols() - c0);
    std::memcpy(q + c0, buf, size_t(len));
  }
}

void QIntMatrix::dequantize(float* W) const {
  const int64_t gs = grid_.group_size(cols());
#pragma omp parallel if (rows() * cols() > 65536)
  {
    std::vector<uint8_t> q(static_cast<size_t>(cols()));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows(); r++) {
      unpack_row(r, q.data());
      for (int64_t c = 0; c < cols(); c++) W[r * cols() + c] = dequant(q[c], params(r, c / gs));
    }
  }
}

nlohmann::json QIntMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".qweight", DType::U8, {rows(), row_bytes()}, codes_, size_t(rows() * row_bytes()));
  w.add(prefix + ".scales", DType::F16, {rows(), ngroups()}, scales_, size_t(rows() * ngroups()) * 2);
  if (!grid_.sym) w.add(prefix + ".zeros", DType::U8, {rows(), ngroups()}, zeros_, size_t(rows() * ngroups()));
  return {{"format", format()}, {"bits", grid_.bits}, {"group", grid_.group}, {"sym", grid_.sym},
          {"rows", rows()},     {"cols", cols()},     {"layout", "qk64"}};
}

WeightPtr load_qint(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  QuantGrid g;
  int64_t rows = 0, cols = 0;
  try {
    g.bits = spec.at("bits").get<int>();
    g.group = spec.at("group").get<int>();
    g.sym = spec.at("sym").get<bool>();
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: quantized spec {} lacks bits/group/sym/rows/cols ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(QIntMatrix::supported(g) && rows > 0 && cols > 0, "{}: {}: unsupported quantized spec {}", src.where(),
        prefix, spec.dump());
  check(spec.value("format", "") == QIntMatrix::format_name(g), "{}: {}: spec {} names format '{}', want '{}'",
        src.where(), prefix, spec.dump(), spec.value("format", ""), QIntMatrix::format_name(g));
  check(spec.value("layout", "qk64") == "qk64", "{}: {}: unknown code layout in {}", src.where(), prefix, spec.dump());
  const int64_t ng = g.ngroups(cols), rb = (cols + QK - 1) / QK * qblock_bytes(g.bits);
  auto get = [&](const char* part, DType dt, int64_t c) {
    return stored_tensor(src, prefix + "." + part, dt, {rows, c});
  };
  const uint8_t* codes = get("qweight", DType::U8, rb);
  const uint8_t* scales = get("scales", DType::F16, ng);
  const uint8_t* zeros = g.sym ? nullptr : get("zeros", DType::U8, ng);
  return std::make_unique<QIntMatrix>(rows, cols, g, codes, reinterpret_cast<const f16_t*>(scales), zeros,
                                      src.keeper());
}

// ---------------------------------------------------------------------------------------------------
// Activation quantization

void quantize_acts(const float* X, int64_t n, int64_t cols, const QuantGrid& grid, QActs* a, bool per_token) {
  const int64_t nb = (cols + QK - 1) / QK, ng = grid.ngroups(cols), gs = grid.group_size(cols);
  a->n = n, a->nblk = nb, a->ngroups = ng;
  a->xq.resize(size_t(n * nb * QK));
  a->dv.resize(size_t(n * nb * 16));
  a->gsum.assign(size_t(n * ng), 0.0f);
#pragma omp parallel for schedule(static) if (n * cols > 65536)
  for (int64_t t = 0; t < n; t++) {
    const float* x = X + t * cols;
    int8_t* xq = a->xq.data() + t * nb * QK;
    float* dv = a->dv.data() + t * nb * 16;
    float* gsum = a->gsum.data() + t * ng;
    float tmax = 0;  // per token: one d for every block
    if (per_token)
      for (int64_t i = 0; i < cols; i++) tmax = std::max(tmax, std::fabs(x[i]));
    for (int64_t k = 0; k < 2 * nb; k++) {  // blocks of 32
      int64_t c0 = k * 32, len = std::clamp<int64_t>(cols - c0, 0, 32);
      float amax = tmax;
      if (!per_token)
        for (int64_t i = 0; i < len; i++) amax = std::max(amax, std::fabs(x[c0 + i]));
      float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
      int sum = 0;
      for (int64_t i = 0; i < 32; i++) {
        int v = i < len ? int(std::nearbyint(x[c0 + i] * id)) : 0;
        v = std::clamp(v, -127, 127);
        xq[c0 + i] = int8_t(v);
        sum += v;
      }
      for (int i = 0; i < 8; i++) dv[k * 8 + i] = d;
      if (len > 0) gsum[c0 / gs] += d * float(sum);  // blocks of 32 never straddle groups (32 | gs or one group)
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Kernels and dispatch

QIntView qint_view(const QIntMatrix& m) {
  return {m.grid().bits, m.rows(),      m.cols(),  m.grid().group_size(m.cols()), m.ngroups(), m.nblk(),
          m.row_bytes(), m.codes(),     m.scales(), m.zeros()};
}

const char* isa_name(QIntIsa isa) {
  switch (isa) {
    case QIntIsa::Scalar: return "scalar";
    case QIntIsa::Avx2: return "avx2";
    case QIntIsa::Avx512: return "avx512";
  }
  return "?";
}

QIntIsa qint_best_isa() {
  static const QIntIsa best = [] {
    __builtin_cpu_init();
    bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    return avx512 ? QIntIsa::Avx512 : QIntIsa::Avx2;
  }();
  return best;
}

static QIntIsa g_isa = qint_best_isa();
// Measured on 4096×14336, n = 128, 2 threads: int8 kernel 142 ms, dequantize + sgemm 560–680 ms (f32
// sgemm alone 176 ms), so the int8 kernel serves every n; the sgemm path stays for exact-math checks.
static int64_t g_sgemm_min_n = int64_t(1) << 40;

QIntIsa qint_isa() { return g_isa; }
void qint_force_isa(QIntIsa isa) {
  check(isa != QIntIsa::Avx512 || qint_best_isa() == QIntIsa::Avx512, "qint: this CPU lacks AVX-512 VNNI");
  g_isa = isa;
}
int64_t qint_sgemm_min_n() { return g_sgemm_min_n; }
void qint_set_sgemm_min_n(int64_t n) { g_sgemm_min_n = n; }

static void rows_scalar(const QIntView& W, const QActs& A, float* Y, int64_t r0, int64_t r1) {
  uint8_t q[QK];
  const int bb = qblock_bytes(W.bits);
  std::vector<double> isum(size_t(2 * W.nblk));
  for (int64_t r = r0; r < r1; r++) {
    for (int64_t t = 0; t < A.n; t++) {
      double y = 0;
      std::vector<double> gacc(size_t(W.ngroups), 0.0);
      for (int64_t b = 0; b < W.nblk; b++) {
        qblock_unpack(W.bits, W.codes + r * W.row_bytes + b * bb, q);
        for (int h = 0; h < 2; h++) {
          int64_t c0 = b * QK + h * 32;
          if (c0 >= W.cols) break;
          int64_t s = 0;
          for (int i = 0; i < 32; i++) s += int64_t(q[h * 32 + i]) * A.x(t)[c0 + i];
          gacc[size_t(c0 / W.group)] += double(A.d(t)[b * 16 + h * 8]) * double(s);
        }
      }
      for (int64_t g = 0; g < W.ngroups; g++) {
        double sc = f16_to_f32(W.scales[r * W.ngroups + g]);
        double z = W.zeros ? W.zeros[r * W.ngroups + g] : (1 << (W.bits - 1));
        y += sc * (gacc[size_t(g)] - z * double(A.s(t)[g]));
      }
      Y[t * W.rows + r] = float(y);
    }
  }
}

void qint_matmul_ref(const QIntMatrix& m, const float* X, int64_t n, float* Y) {
  QActs a;
  quantize_acts(X, n, m.cols(), m.grid(), &a);
  rows_scalar(qint_view(m), a, Y, 0, m.rows());
}

static QIntRowsKernel kernel_for(QIntIsa isa, int bits) {
  switch (isa) {
    case QIntIsa::Avx512: return qint_kernel_avx512(bits);
    case QIntIsa::Avx2: return qint_kernel_avx2(bits);
    default: return rows_scalar;
  }
}

void qint_matmul_int8(const QIntMatrix& m, const float* X, int64_t n, float* Y) {
  thread_local QActs a_tls;  // reused between calls: no allocation per decoded token
  // The workers of the parallel loop below must all read the calling thread's activations, not their own
  // (empty) thread_local copies: bind a reference before entering the region.
  QActs& a = a_tls;
  quantize_acts(X, n, m.cols(), m.grid(), &a);
  qint_matmul_acts(m, a, g_isa, Y);
}

void qint_matmul_acts(const QIntMatrix& m, const QActs& a, QIntIsa isa, float* Y) {
  const int64_t n = a.n;
  const QIntView v = qint_view(m);
  const QIntRowsKernel k = kernel_for(isa, v.bits);
  // Rows per task: decode 16; prefill 64 so that fewer passes stream the quantized activations.
  const int64_t tile = n == 1 ? 16 : 64;
  const int64_t ntiles = (v.rows + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (v.rows * v.cols * n > 65536)
  for (int64_t i = 0; i < ntiles; i++) k(v, a, Y, i * tile, std::min(v.rows, (i + 1) * tile));
}

void qint_matmul_sgemm(const QIntMatrix& m, const float* X, int64_t n, float* Y) {
  const int64_t cols = m.cols(), rows = m.rows(), tile = 256, gs = m.grid().group_size(cols);
  std::vector<float> Wt(size_t(tile * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += tile) {
    int64_t nr = std::min(tile, rows - r0);
#pragma omp parallel
    {
      std::vector<uint8_t> q(static_cast<size_t>(cols));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nr; i++) {
        m.unpack_row(r0 + i, q.data());
        for (int64_t c = 0; c < cols; c++) Wt[size_t(i * cols + c)] = dequant(q[c], m.params(r0 + i, c / gs));
      }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(nr), int(cols), 1.0f, X, int(cols), Wt.data(),
                int(cols), 0.0f, Y + r0, int(rows));
  }
}

void QIntMatrix::matmul(const float* X, int64_t n, float* Y) const {
  if (n >= g_sgemm_min_n) return qint_matmul_sgemm(*this, X, n, Y);
  qint_matmul_int8(*this, X, n, Y);
}

}  // namespace lmp

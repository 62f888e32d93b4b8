#include "kernels/spqr_format.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/qint.h"

namespace lmp {

void check_spqr_layout(const SpqrLayout& l, int64_t rows, int64_t cols, const std::string& what) {
  check(l.bits >= 2 && l.bits <= 4, "{}: --bits {} is not supported by spqr (2, 3 or 4)", what, l.bits);
  check(l.group == 16 || l.group == 32 || l.group == 64 || l.group == 128,
        "{}: --group {} is not supported by spqr (16, 32, 64 or 128)", what, l.group);
  check(l.stat_bits == 2 || l.stat_bits == 3 || l.stat_bits == 4 || l.stat_bits == 8,
        "{}: stat_bits {} is not supported by spqr (2, 3, 4 or 8)", what, l.stat_bits);
  check(l.stat_group >= 1 && l.stat_group <= 65536, "{}: stat_group {} is outside [1, 65536]", what,
        l.stat_group);
  check(rows > 0 && cols > 0 && cols <= 65536, "{}: spqr needs 1..65536 columns (16-bit outlier index), got {}x{}",
        what, rows, cols);
}

SpqrStatGrid spqr_quantize_stats(const float* v, int64_t n, int bits, uint8_t* codes) {
  const int maxq = (1 << bits) - 1;
  float lo = v[0], hi = v[0];
  for (int64_t i = 1; i < n; i++) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
  check(std::isfinite(lo) && std::isfinite(hi) && std::fabs(lo) <= 65504.0f && std::fabs(hi) <= 65504.0f,
        "spqr: statistic range [{}, {}] is not representable in f16", lo, hi);
  SpqrStatGrid g{f32_to_f16(hi > lo ? f16_ceil((hi - lo) / float(maxq)) : 0.0f), f32_to_f16(lo)};
  const float step = f16_to_f32(g.step), base = f16_to_f32(g.base);
  for (int64_t i = 0; i < n; i++) {
    float c = step > 0 ? std::nearbyint((v[i] - base) / step) : 0.0f;
    codes[i] = uint8_t(std::clamp(c, 0.0f, float(maxq)));
  }
  return g;
}

size_t spqr_stored_bytes(int64_t rows, int64_t cols, const SpqrLayout& l, int64_t nnz, int64_t maxrow) {
  const int64_t ng = l.ngroups(cols), nblk = (cols + 63) / 64, nsb = (rows * ng + 63) / 64;
  const int64_t count_bytes = maxrow <= 0xff ? 1 : maxrow <= 0xffff ? 2 : 4;
  return size_t(rows * nblk * 8 * l.bits + 2 * nsb * 8 * l.stat_bits + l.nrowgroups(rows) * ng * 4 * 2 +
                rows * count_bytes + nnz * 4);
}

// Codes of a flat stream packed in 64-code blocks of `bits` bits (qblock_pack), zero padded.
static std::vector<uint8_t> pack_stream(const uint8_t* q, int64_t n, int bits) {
  const int64_t nb = (n + 63) / 64;
  std::vector<uint8_t> out(size_t(nb * 8 * bits));
  uint8_t buf[QK];
  for (int64_t b = 0; b < nb; b++) {
    std::memset(buf, 0, QK);
    std::memcpy(buf, q + b * QK, size_t(std::min<int64_t>(QK, n - b * QK)));
    qblock_pack(bits, buf, out.data() + b * 8 * bits);
  }
  return out;
}

// Code i of such a stream, read straight from the Block<b> layout (kernels/qint.h).
static int stream_code(const uint8_t* p, int bits, int64_t i) {
  const uint8_t* blk = p + i / QK * 8 * bits;
  const int j = int(i % QK);
  switch (bits) {
    case 2: return (blk[j % 16] >> (2 * (j / 16))) & 3;
    case 3: return ((blk[j % 16] >> (2 * (j / 16))) & 3) | ((blk[16 + j / 8] >> (j % 8)) & 1) << 2;
    case 4: return (blk[j % 32] >> (4 * (j / 32))) & 15;
    default: return blk[j];
  }
}

SpqrMatrix::SpqrMatrix(int64_t rows, int64_t cols, const SpqrLayout& l, const uint8_t* codes, const uint8_t* scode,
                       const uint8_t* zcode, std::vector<f16_t> stats,
                       const std::vector<std::vector<SpqrOutlier>>& outliers)
    : SparseMatrixBase(rows, cols), l_(l), stats_(std::move(stats)) {
  check_spqr_layout(l, rows, cols, "SpqrMatrix");
  check(int64_t(outliers.size()) == rows, "SpqrMatrix: {} outlier rows for {} rows", outliers.size(), rows);
  const int64_t ng = ngroups();
  codes_.assign(size_t(rows * row_bytes()), 0);
  uint8_t buf[QK];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < nblk(); b++) {
      std::memset(buf, 0, QK);
      const int64_t len = std::min<int64_t>(QK, cols - b * QK);
      for (int64_t i = 0; i < len; i++) {
        buf[i] = codes[r * cols + b * QK + i];
        check(buf[i] < (1 << l.bits), "SpqrMatrix: code {} out of range at ({}, {})", buf[i], r, b * QK + i);
      }
      qblock_pack(l.bits, buf, codes_.data() + r * row_bytes() + b * 8 * l.bits);
    }
  for (int64_t i = 0; i < rows * ng; i++)
    check(scode[i] < (1 << l.stat_bits) && zcode[i] < (1 << l.stat_bits), "SpqrMatrix: statistic code out of range");
  scodes_ = pack_stream(scode, rows * ng, l.stat_bits);
  zcodes_ = pack_stream(zcode, rows * ng, l.stat_bits);
  for (const auto& row : outliers)
    for (const SpqrOutlier& o : row) {
      ocol_.push_back(uint16_t(o.col));
      oval_.push_back(f32_to_f16(o.delta));
    }
  optr_.assign(size_t(rows + 1), 0);
  for (int64_t r = 0; r < rows; r++) {
    for (size_t k = 1; k < outliers[size_t(r)].size(); k++)
      check(outliers[size_t(r)][k - 1].col < outliers[size_t(r)][k].col, "SpqrMatrix: row {} outliers not ascending", r);
    optr_[size_t(r + 1)] = optr_[size_t(r)] + int64_t(outliers[size_t(r)].size());
  }
  finish();
}

SpqrMatrix::SpqrMatrix(int64_t rows, int64_t cols, const SpqrLayout& l, std::vector<uint8_t> codes,
                       std::vector<uint8_t> scodes, std::vector<uint8_t> zcodes, std::vector<f16_t> stats,
                       const std::vector<uint32_t>& counts, std::vector<uint16_t> ocol, std::vector<f16_t> oval)
    : SparseMatrixBase(rows, cols), l_(l), codes_(std::move(codes)), scodes_(std::move(scodes)),
      zcodes_(std::move(zcodes)), stats_(std::move(stats)), ocol_(std::move(ocol)), oval_(std::move(oval)) {
  check_spqr_layout(l, rows, cols, "SpqrMatrix");
  check(int64_t(counts.size()) == rows, "SpqrMatrix: {} outlier counts for {} rows", counts.size(), rows);
  optr_.assign(size_t(rows + 1), 0);
  for (int64_t r = 0; r < rows; r++) optr_[size_t(r + 1)] = optr_[size_t(r)] + counts[size_t(r)];
  finish();
}

void SpqrMatrix::finish() {
  const int64_t ng = ngroups(), nsb = (rows() * ng + 63) / 64;
  check(int64_t(codes_.size()) == rows() * row_bytes(), "SpqrMatrix: {} code bytes, want {}", codes_.size(),
        rows() * row_bytes());
  check(int64_t(scodes_.size()) == nsb * 8 * l_.stat_bits && scodes_.size() == zcodes_.size(),
        "SpqrMatrix: statistic code streams have {}/{} bytes, want {}", scodes_.size(), zcodes_.size(),
        nsb * 8 * l_.stat_bits);
  check(int64_t(stats_.size()) == l_.nrowgroups(rows()) * ng * 4, "SpqrMatrix: {} second-level statistics, want {}",
        stats_.size(), l_.nrowgroups(rows()) * ng * 4);
  check(optr_.back() == int64_t(ocol_.size()) && ocol_.size() == oval_.size(),
        "SpqrMatrix: {} outliers counted, {} columns, {} values", optr_.back(), ocol_.size(), oval_.size());
  for (int64_t r = 0; r < rows(); r++)
    for (int64_t k = optr_[size_t(r)]; k < optr_[size_t(r + 1)]; k++)
      check(ocol_[size_t(k)] < cols() && (k == optr_[size_t(r)] || ocol_[size_t(k - 1)] < ocol_[size_t(k)]),
            "SpqrMatrix: row {} outlier columns must be ascending and < {}", r, cols());
  ovalf_.resize(oval_.size());
  for (size_t i = 0; i < oval_.size(); i++) ovalf_[i] = f16_to_f32(oval_[i]);
}

size_t SpqrMatrix::nbytes() const {
  return spqr_stored_bytes(rows(), cols(), l_, nnz(), max_row_outliers());
}

int64_t SpqrMatrix::max_row_outliers() const {
  int64_t m = 0;
  for (int64_t r = 0; r < rows(); r++) m = std::max(m, optr_[size_t(r + 1)] - optr_[size_t(r)]);
  return m;
}

void SpqrMatrix::row_stats(int64_t r, float* s, float* z) const {
  const int64_t ng = ngroups(), i0 = r * ng, b0 = i0 / QK, b1 = (i0 + ng + QK - 1) / QK, bb = 8 * l_.stat_bits;
  const f16_t* st = stats_.data() + r / l_.stat_group * ng * 4;
  if (ng < QK) {  // short rows: the few codes one by one
    for (int64_t g = 0; g < ng; g++) {
      s[g] = spqr_stat(stream_code(scodes_.data(), l_.stat_bits, i0 + g), st[4 * g], st[4 * g + 1]);
      z[g] = spqr_stat(stream_code(zcodes_.data(), l_.stat_bits, i0 + g), st[4 * g + 2], st[4 * g + 3]);
    }
    return;
  }
  // Whole 64-code blocks covering the row's codes, unpacked at once.
  thread_local std::vector<uint8_t> cs, cz;
  cs.resize(size_t((b1 - b0) * QK));
  cz.resize(cs.size());
  for (int64_t b = b0; b < b1; b++) {
    qblock_unpack(l_.stat_bits, scodes_.data() + b * bb, cs.data() + (b - b0) * QK);
    qblock_unpack(l_.stat_bits, zcodes_.data() + b * bb, cz.data() + (b - b0) * QK);
  }
  const uint8_t *ps = cs.data() + (i0 - b0 * QK), *pz = cz.data() + (i0 - b0 * QK);
  for (int64_t g = 0; g < ng; g++) {
    s[g] = spqr_stat(ps[g], st[4 * g], st[4 * g + 1]);
    z[g] = spqr_stat(pz[g], st[4 * g + 2], st[4 * g + 3]);
  }
}

void SpqrMatrix::decode_rows(int64_t r0, int64_t r1, float* W) const {
  const int64_t ng = ngroups(), C = cols();
  std::vector<float> s(static_cast<size_t>(ng)), z(static_cast<size_t>(ng));
  uint8_t q[QK];
  for (int64_t r = r0; r < r1; r++) {
    float* out = W + (r - r0) * C;
    row_stats(r, s.data(), z.data());
    for (int64_t b = 0; b < nblk(); b++) {
      qblock_unpack(l_.bits, codes_.data() + r * row_bytes() + b * 8 * l_.bits, q);
      for (int64_t i = 0, c = b * QK; i < QK && c < C; i++, c++)
        out[c] = spqr_dequant(q[i], s[size_t(c / l_.group)], z[size_t(c / l_.group)]);
    }
    for (int64_t k = optr_[size_t(r)]; k < optr_[size_t(r + 1)]; k++) out[ocol_[size_t(k)]] += ovalf_[size_t(k)];
  }
}

// Reference: every weight dequantized from the stored bits, double accumulation.
void SpqrMatrix::gemv_ref(const float* x, float* y) const {
  std::vector<float> w(static_cast<size_t>(cols()));
  for (int64_t r = 0; r < rows(); r++) {
    decode_rows(r, r + 1, w.data());
    double acc = 0;
    for (int64_t c = 0; c < cols(); c++) acc += double(w[size_t(c)]) * double(x[c]);
    y[r] = float(acc);
  }
}

void SpqrMatrix::gemv(const float* x, float* y) const {
  thread_local std::vector<float> xp_tls, xg_tls;
  std::vector<float>&xp = xp_tls, &xg = xg_tls;  // the calling thread's buffers, read by every worker
  const int64_t ng = ngroups();
  xp.assign(size_t(nblk() * QK), 0.0f);
  std::memcpy(xp.data(), x, size_t(cols()) * 4);
  xg.assign(size_t(ng), 0.0f);
  for (int64_t c = 0; c < cols(); c++) xg[size_t(c / l_.group)] += x[c];
  const int64_t tile = 16, ntiles = (rows() + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (rows() * cols() > 65536)
  for (int64_t i = 0; i < ntiles; i++)
    spqr_gemv_avx2(*this, xp.data(), xg.data(), y, i * tile, std::min(rows(), (i + 1) * tile));
}

nlohmann::json SpqrMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  const int64_t ng = ngroups(), maxrow = max_row_outliers();
  w.add(prefix + ".qweight", DType::U8, {rows(), row_bytes()}, codes_.data(), codes_.size());
  w.add(prefix + ".scale_codes", DType::U8, {int64_t(scodes_.size())}, scodes_.data(), scodes_.size());
  w.add(prefix + ".zero_codes", DType::U8, {int64_t(zcodes_.size())}, zcodes_.data(), zcodes_.size());
  w.add(prefix + ".stats", DType::F16, {l_.nrowgroups(rows()), ng, 4}, stats_.data(), stats_.size() * 2);
  std::vector<uint8_t> cnt;
  const int cb = maxrow <= 0xff ? 1 : maxrow <= 0xffff ? 2 : 4;
  for (int64_t r = 0; r < rows(); r++) {
    uint32_t c = uint32_t(optr_[size_t(r + 1)] - optr_[size_t(r)]);
    for (int k = 0; k < cb; k++) cnt.push_back(uint8_t(c >> (8 * k)));
  }
  w.add(prefix + ".outlier_count", cb == 1 ? DType::U8 : cb == 2 ? DType::U16 : DType::U32, {rows()}, cnt.data(),
        cnt.size());
  if (nnz() > 0) {
    w.add(prefix + ".outlier_col", DType::U16, {nnz()}, ocol_.data(), ocol_.size() * 2);
    w.add(prefix + ".outlier_val", DType::F16, {nnz()}, oval_.data(), oval_.size() * 2);
  }
  return {{"format", format()},        {"rows", rows()},         {"cols", cols()},
          {"bits", l_.bits},           {"group", l_.group},      {"stat_bits", l_.stat_bits},
          {"stat_group", l_.stat_group}, {"outliers", nnz()}};
}

WeightPtr load_spqr(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  SpqrLayout l;
  int64_t rows = 0, cols = 0, nnz = 0;
  try {
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
    l.bits = spec.at("bits").get<int>();
    l.group = spec.at("group").get<int>();
    l.stat_bits = spec.at("stat_bits").get<int>();
    l.stat_group = spec.at("stat_group").get<int>();
    nnz = spec.at("outliers").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: {}: spqr spec {} lacks rows/cols/bits/group/stat_bits/stat_group/outliers ({})", src.where(), prefix,
         spec.dump(), e.what());
  }
  check_spqr_layout(l, rows, cols, src.where() + ": " + prefix);
  check(nnz >= 0 && nnz <= rows * cols, "{}: {}: spqr spec has {} outliers", src.where(), prefix, nnz);
  const int64_t ng = l.ngroups(cols), nsb = (rows * ng + 63) / 64;
  auto get = [&](const std::string& part, std::vector<DType> dts, std::vector<int64_t> shape) -> const TensorView& {
    const TensorView& t = src.get(prefix + "." + part);
    check(std::find(dts.begin(), dts.end(), t.dtype) != dts.end() && t.shape == shape,
          "{}: tensor {} is {} [{}], want {} [{}]", src.where(), t.name, dtype_name(t.dtype), fmt::join(t.shape, ", "),
          dtype_name(dts[0]), fmt::join(shape, ", "));
    return t;
  };
  auto bytes = [](const TensorView& t) { return std::vector<uint8_t>(t.data, t.data + t.nbytes); };
  auto codes = bytes(get("qweight", {DType::U8}, {rows, (cols + 63) / 64 * 8 * l.bits}));
  auto sc = bytes(get("scale_codes", {DType::U8}, {nsb * 8 * l.stat_bits}));
  auto zc = bytes(get("zero_codes", {DType::U8}, {nsb * 8 * l.stat_bits}));
  const TensorView& ts = get("stats", {DType::F16}, {l.nrowgroups(rows), ng, 4});
  std::vector<f16_t> stats(size_t(ts.numel()));
  std::memcpy(stats.data(), ts.data, ts.nbytes);
  const TensorView& tc = get("outlier_count", {DType::U8, DType::U16, DType::U32}, {rows});
  std::vector<uint32_t> counts(static_cast<size_t>(rows));
  const size_t cb = dtype_size(tc.dtype);
  for (int64_t r = 0; r < rows; r++)
    for (size_t k = 0; k < cb; k++) counts[size_t(r)] |= uint32_t(tc.data[size_t(r) * cb + k]) << (8 * k);
  std::vector<uint16_t> ocol(static_cast<size_t>(nnz));
  std::vector<f16_t> oval(static_cast<size_t>(nnz));
  if (nnz > 0) {
    std::memcpy(ocol.data(), get("outlier_col", {DType::U16}, {nnz}).data, size_t(nnz) * 2);
    std::memcpy(oval.data(), get("outlier_val", {DType::F16}, {nnz}).data, size_t(nnz) * 2);
  }
  return std::make_unique<SpqrMatrix>(rows, cols, l, std::move(codes), std::move(sc), std::move(zc), std::move(stats),
                                      counts, std::move(ocol), std::move(oval));
}

}  // namespace lmp

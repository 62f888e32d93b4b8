#include "kernels/lowbit_float.h"

#include "kernels/dense.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "core/half.h"
#include "kernels/weight_registry.h"

namespace lmp {

// ---------------------------------------------------------------------------------------------------
// Codecs: one generic definition over (ebits, mbits, bias, specials)

const LowFloatSpec& lowfloat_spec(LowFloat f) {
  static const LowFloatSpec specs[] = {
      {"e4m3", 4, 3, 7, false, true}, {"e5m2", 5, 2, 15, true, true}, {"e2m1", 2, 1, 1, false, false}};
  return specs[int(f)];
}

bool lowfloat_from_name(const std::string& s, LowFloat* f) {
  for (LowFloat x : {LowFloat::E4M3, LowFloat::E5M2, LowFloat::E2M1})
    if (s == lowfloat_spec(x).name) return *f = x, true;
  return false;
}

float lowfloat_decode(LowFloat f, uint8_t code) {
  const LowFloatSpec& s = lowfloat_spec(f);
  const int nb = s.bits(), emax = (1 << s.ebits) - 1, mmax = (1 << s.mbits) - 1;
  code = uint8_t(code & ((1 << nb) - 1));
  const bool neg = code >> (nb - 1);
  const int E = (code >> s.mbits) & emax, M = code & mmax;
  float v;
  if (s.ieee_special && E == emax)
    v = M == 0 ? INFINITY : NAN;
  else if (s.has_nan && !s.ieee_special && E == emax && M == mmax)
    v = NAN;
  else if (E == 0)
    v = std::ldexp(float(M), 1 - s.bias - s.mbits);
  else
    v = std::ldexp(float((1 << s.mbits) + M), E - s.bias - s.mbits);
  return neg ? -v : v;
}

namespace {
// Positive finite values by code (monotonic in the code), per format.
struct Positives {
  std::vector<float> v;
  explicit Positives(LowFloat f) {
    const int half = 1 << (lowfloat_spec(f).bits() - 1);
    for (int c = 0; c < half; c++) {
      float x = lowfloat_decode(f, uint8_t(c));
      if (!std::isfinite(x)) break;
      v.push_back(x);
    }
  }
};
const Positives& positives(LowFloat f) {
  static const Positives p[] = {Positives(LowFloat::E4M3), Positives(LowFloat::E5M2), Positives(LowFloat::E2M1)};
  return p[int(f)];
}
}  // namespace

float lowfloat_max(LowFloat f) { return positives(f).v.back(); }

uint8_t lowfloat_encode(LowFloat f, float x) {
  const LowFloatSpec& s = lowfloat_spec(f);
  const uint8_t sign = std::signbit(x) ? uint8_t(1 << (s.bits() - 1)) : 0;
  if (std::isnan(x)) return s.has_nan ? uint8_t((1 << s.bits()) - 1) : 0;  // S.111..1 (a NaN in E4M3 and E5M2)
  if (std::isinf(x) && s.ieee_special) return uint8_t(sign | (((1 << s.ebits) - 1) << s.mbits));
  const std::vector<float>& p = positives(f).v;
  const int top = int(p.size()) - 1;
  const float a = std::fabs(x);
  if (a >= p[size_t(top)]) return uint8_t(sign | top);  // saturate
  const int c = int(std::upper_bound(p.begin(), p.end(), a) - p.begin()) - 1;  // p[c] ≤ a < p[c + 1]
  // Compare a with the midpoint in double (exact for these ranges); ties go to the even code.
  const double twice = 2.0 * double(a), mid2 = double(p[size_t(c)]) + double(p[size_t(c + 1)]);
  const int q = twice < mid2 ? c : twice > mid2 ? c + 1 : (c % 2 == 0 ? c : c + 1);
  return uint8_t(sign | q);
}

const std::array<float, 256>& lowfloat_table(LowFloat f) {
  static const auto tabs = [] {
    std::array<std::array<float, 256>, 3> t{};
    for (int k = 0; k < 3; k++)
      for (int c = 0; c < 256; c++) t[size_t(k)][size_t(c)] = lowfloat_decode(LowFloat(k), uint8_t(c));
    return t;
  }();
  return tabs[size_t(f)];
}

// ---------------------------------------------------------------------------------------------------
// LowFloatMatrix

bool LowFloatMatrix::supported_group(int g) { return g == 0 || g == 32 || g == 64 || g == 128 || g == 256; }

std::string LowFloatMatrix::format_name(LowFloat f, int group) {
  const LowFloatSpec& s = lowfloat_spec(f);
  return fmt::format("fp{}_{}_{}", s.bits(), s.name, group ? fmt::format("g{}", group) : std::string("row"));
}

const std::vector<std::pair<LowFloat, int>>& LowFloatMatrix::all_formats() {
  static const std::vector<std::pair<LowFloat, int>> v = [] {
    std::vector<std::pair<LowFloat, int>> r;
    for (LowFloat f : {LowFloat::E4M3, LowFloat::E5M2, LowFloat::E2M1})
      for (int g : {0, 32, 64, 128, 256}) r.emplace_back(f, g);
    return r;
  }();
  return v;
}

LowFloatMatrix::LowFloatMatrix(int64_t rows, int64_t cols, LowFloat f, int group)
    : RowDecodedMatrix(rows, cols), fmt_(f), group_(group) {
  check(supported_group(group) && rows > 0 && cols > 0, "LowFloatMatrix: unsupported {}x{} group {}", rows, cols,
        group);
  own_codes_.assign(size_t(rows * row_bytes()), 0);
  own_sc_.assign(size_t(rows * ngroups()), 0);
  codes_ = own_codes_.data();
  sc_ = own_sc_.data();
}

LowFloatMatrix::LowFloatMatrix(int64_t rows, int64_t cols, LowFloat f, int group, const uint8_t* codes,
                               const f16_t* scales, std::shared_ptr<const void> keeper)
    : RowDecodedMatrix(rows, cols), fmt_(f), group_(group), keeper_(std::move(keeper)), codes_(codes), sc_(scales) {
  check(supported_group(group), "LowFloatMatrix: unsupported group {}", group);
}

uint8_t LowFloatMatrix::code(int64_t r, int64_t c) const {
  const uint8_t* row = codes_ + r * row_bytes();
  if (lowfloat_spec(fmt_).bits() == 8) return row[c];
  return uint8_t(c % 2 ? row[c / 2] >> 4 : row[c / 2] & 15);
}

std::unique_ptr<LowFloatMatrix> LowFloatMatrix::quantize(int64_t rows, int64_t cols, const float* W, LowFloat f,
                                                         int group, float clip, bool pow2) {
  std::unique_ptr<LowFloatMatrix> m(new LowFloatMatrix(rows, cols, f, group));
  const int64_t gs = m->group_size(), ng = m->ngroups(), rb = m->row_bytes();
  const bool fp4 = lowfloat_spec(f).bits() == 4;
  const float fmax = lowfloat_max(f);
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++)
    for (int64_t g = 0; g < ng; g++) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      float amax = 0;
      for (int64_t c = c0; c < c1; c++) amax = std::max(amax, std::fabs(W[r * cols + c]));
      const float s = pow2 ? pow2_ceil(amax * clip / fmax) : f16_ceil(amax * clip / fmax);
      m->own_sc_[size_t(r * ng + g)] = f32_to_f16(s);
      for (int64_t c = c0; c < c1; c++) {
        uint8_t q = lowfloat_encode(f, W[r * cols + c] / s);
        uint8_t& b = m->own_codes_[size_t(r * rb + (fp4 ? c / 2 : c))];
        b = fp4 ? uint8_t(b | (c % 2 ? q << 4 : q)) : q;
      }
    }
  return m;
}

void LowFloatMatrix::decode_row(int64_t r, float* w) const {
  const std::array<float, 256>& tab = lowfloat_table(fmt_);
  const int64_t gs = group_size();
  const uint8_t* row = codes_ + r * row_bytes();
  const bool fp4 = lowfloat_spec(fmt_).bits() == 4;
  for (int64_t g = 0; g < ngroups(); g++) {
    const float s = f16_to_f32(sc_[r * ngroups() + g]);
    const int64_t c1 = std::min(cols(), (g + 1) * gs);
    if (fp4)
      for (int64_t c = g * gs; c < c1; c++) w[c] = tab[(row[c / 2] >> (4 * (c % 2))) & 15] * s;
    else
      for (int64_t c = g * gs; c < c1; c++) w[c] = tab[row[c]] * s;
  }
}

void lowfloat_matmul_ref(const LowFloatMatrix& m, const float* X, int64_t n, float* Y) {
  const int64_t R = m.rows(), C = m.cols(), gs = m.group_size();
  const std::array<float, 256>& tab = lowfloat_table(m.fmt());
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double y = 0;
      for (int64_t c = 0; c < C; c++) y += double(tab[m.code(r, c)]) * double(m.scale(r, c / gs)) * X[t * C + c];
      Y[t * R + r] = float(y);
    }
}

nlohmann::json LowFloatMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".qweight", DType::U8, {rows(), row_bytes()}, codes_, size_t(rows() * row_bytes()));
  w.add(prefix + ".scales", DType::F16, {rows(), ngroups()}, sc_, size_t(rows() * ngroups()) * 2);
  return {{"format", format()}, {"fp", lowfloat_spec(fmt_).name}, {"group", group_}, {"rows", rows()}, {"cols", cols()}};
}

WeightPtr load_lowfloat(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  LowFloat f{};
  int group = 0;
  int64_t rows = 0, cols = 0;
  try {
    check(lowfloat_from_name(spec.at("fp").get<std::string>(), &f), "unknown fp kind");
    group = spec.at("group").get<int>();
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
  } catch (const std::exception& e) {
    fail("{}: {}: low-bit float spec {} lacks fp (e4m3|e5m2|e2m1)/group/rows/cols ({})", src.where(), prefix,
         spec.dump(), e.what());
  }
  check(LowFloatMatrix::supported_group(group) && rows > 0 && cols > 0 &&
            spec.value("format", "") == LowFloatMatrix::format_name(f, group),
        "{}: {}: unsupported low-bit float spec {}", src.where(), prefix, spec.dump());
  const int64_t rb = lowfloat_spec(f).bits() == 4 ? (cols + 1) / 2 : cols;
  const int64_t gs = group ? group : cols, ng = (cols + gs - 1) / gs;
  auto get = [&](const char* part, DType dt, int64_t c) {
    return stored_tensor(src, prefix + "." + part, dt, {rows, c});
  };
  const uint8_t* codes = get("qweight", DType::U8, rb);
  const uint8_t* sc = get("scales", DType::F16, ng);
  return std::make_unique<LowFloatMatrix>(rows, cols, f, group, codes, reinterpret_cast<const f16_t*>(sc),
                                          src.keeper());
}

}  // namespace lmp

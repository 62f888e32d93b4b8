#include "kernels/olive.h"

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/dense.h"
#include "kernels/weight_registry.h"

namespace lmp {

namespace {

constexpr float kAbf[8] = {8, 12, 16, 24, 32, 48, 64, 96};  // outlier magnitudes, units of s
constexpr uint8_t kId = 0x8;                                 // victim / outlier identifier nibble
constexpr float kScaleDiv[] = {7, 9, 12, 16, 24, 32, 48, 64, 96};

float normal_value(uint8_t nib) { return float(nib & 8 ? int(nib) - 16 : int(nib)); }
float abfloat_value(uint8_t nib) { return (nib & 8 ? -1.0f : 1.0f) * kAbf[nib & 7]; }

// Nearest abfloat nibble of x.
uint8_t abfloat_code(float x) {
  const float a = std::fabs(x);
  int e = 0;
  for (int i = 1; i < 8; i++)
    if (std::fabs(a - kAbf[i]) < std::fabs(a - kAbf[e])) e = i;
  return uint8_t((x < 0 ? 8 : 0) | e);
}

}  // namespace

std::array<float, 2> olive_decode_pair(uint8_t byte) {
  const uint8_t lo = byte & 15, hi = byte >> 4;
  if (lo == kId) return {0.0f, abfloat_value(hi)};
  if (hi == kId) return {abfloat_value(lo), 0.0f};
  return {normal_value(lo), normal_value(hi)};
}

const std::array<float, 512>& olive_pair_table() {
  static const std::array<float, 512> t = [] {
    std::array<float, 512> v{};
    for (int b = 0; b < 256; b++) {
      auto p = olive_decode_pair(uint8_t(b));
      v[size_t(2 * b)] = p[0], v[size_t(2 * b + 1)] = p[1];
    }
    return v;
  }();
  return t;
}

uint8_t olive_encode_pair(float a, float b, float* err) {
  auto nq = [](float x) { return std::clamp(std::nearbyint(x), -7.0f, 7.0f); };
  const float na = nq(a), nb = nq(b);
  uint8_t best = uint8_t((int(na) & 15) | (int(nb) & 15) << 4);
  float be = (a - na) * (a - na) + (b - nb) * (b - nb);
  const bool hi_out = std::fabs(b) >= std::fabs(a);
  const float out = hi_out ? b : a, victim = hi_out ? a : b;
  const uint8_t oc = abfloat_code(out);
  if (hi_out || oc != kId) {  // an outlier −8 s in the low nibble would read as (victim, outlier)
    const float ov = abfloat_value(oc), e = (out - ov) * (out - ov) + victim * victim;
    if (e < be) be = e, best = hi_out ? uint8_t(kId | oc << 4) : uint8_t(oc | kId << 4);
  }
  *err = be;
  return best;
}

bool OliveMatrix::supported_group(int g) { return g == 0 || g == 32 || g == 64 || g == 128 || g == 256; }
std::string OliveMatrix::format_name(int group) {
  return group ? fmt::format("olive4_g{}", group) : std::string("olive4_row");
}

OliveMatrix::OliveMatrix(int64_t rows, int64_t cols, int group) : RowDecodedMatrix(rows, cols), group_(group) {
  check(supported_group(group) && rows > 0 && cols > 0, "OliveMatrix: unsupported {}x{} group {}", rows, cols, group);
  own_codes_.assign(size_t(rows * row_bytes()), 0);
  own_sc_.assign(size_t(rows * ngroups()), 0);
  codes_ = own_codes_.data(), sc_ = own_sc_.data();
}

OliveMatrix::OliveMatrix(int64_t rows, int64_t cols, int group, const uint8_t* codes, const f16_t* scales,
                         std::shared_ptr<const void> keeper)
    : RowDecodedMatrix(rows, cols), group_(group), keeper_(std::move(keeper)), codes_(codes), sc_(scales) {
  check(supported_group(group), "OliveMatrix: unsupported group {}", group);
}

std::unique_ptr<OliveMatrix> OliveMatrix::quantize(int64_t rows, int64_t cols, const float* W, int group) {
  std::unique_ptr<OliveMatrix> m(new OliveMatrix(rows, cols, group));
  const int64_t gs = m->group_size(), ng = m->ngroups();
#pragma omp parallel for schedule(static) if (rows * cols > 65536)
  for (int64_t r = 0; r < rows; r++) {
    const float* w = W + r * cols;
    for (int64_t g = 0; g < ng; g++) {
      const int64_t c0 = g * gs, c1 = std::min(cols, c0 + gs);
      float amax = 0;
      for (int64_t c = c0; c < c1; c++) amax = std::max(amax, std::fabs(w[c]));
      double best = INFINITY;
      f16_t bs = f32_to_f16(1.0f);
      for (float v : kScaleDiv) {  // the scale with the lowest group error
        const f16_t s16 = f32_to_f16(amax > 0 ? amax / v : 1.0f);
        const float s = f16_to_f32(s16);
        if (!(s > 0)) continue;
        double e = 0;
        for (int64_t c = c0; c < c1; c += 2) {
          float pe;
          olive_encode_pair(w[c] / s, c + 1 < c1 ? w[c + 1] / s : 0.0f, &pe);
          e += double(pe) * s * s;  // pe is in units of s²
        }
        if (e < best) best = e, bs = s16;
      }
      m->own_sc_[size_t(r * ng + g)] = bs;
      const float s = f16_to_f32(bs);
      for (int64_t c = c0; c < c1; c += 2) {
        float pe;
        m->own_codes_[size_t(r * m->row_bytes() + c / 2)] =
            olive_encode_pair(w[c] / s, c + 1 < c1 ? w[c + 1] / s : 0.0f, &pe);
      }
    }
  }
  return m;
}

void OliveMatrix::decode_row(int64_t r, float* w) const {
  const std::array<float, 512>& t = olive_pair_table();
  const uint8_t* b = codes_ + r * row_bytes();
  const int64_t gs = group_size(), C = cols();
  for (int64_t g = 0; g < ngroups(); g++) {
    const float s = scale(r, g);
    const int64_t c1 = std::min(C, (g + 1) * gs);
    for (int64_t c = g * gs; c < c1; c += 2) {
      const float* p = &t[size_t(2 * b[c / 2])];
      w[c] = p[0] * s;
      if (c + 1 < C) w[c + 1] = p[1] * s;
    }
  }
}

void olive_matmul_ref(const OliveMatrix& m, const float* X, int64_t n, float* Y) {
  const int64_t R = m.rows(), C = m.cols(), gs = m.group_size();
  for (int64_t t = 0; t < n; t++)
    for (int64_t r = 0; r < R; r++) {
      double y = 0;
      for (int64_t c = 0; c < C; c += 2) {
        const std::array<float, 2> v = olive_decode_pair(m.byte(r, c / 2));
        const double s = m.scale(r, c / gs);
        y += double(v[0]) * s * X[t * C + c];
        if (c + 1 < C) y += double(v[1]) * s * X[t * C + c + 1];
      }
      Y[t * R + r] = float(y);
    }
}

nlohmann::json OliveMatrix::save(SafeTensorsWriter& w, const std::string& prefix) const {
  w.add(prefix + ".qweight", DType::U8, {rows(), row_bytes()}, codes_, size_t(rows() * row_bytes()));
  w.add(prefix + ".scales", DType::F16, {rows(), ngroups()}, sc_, size_t(rows() * ngroups()) * 2);
  return {{"format", format()}, {"group", group_}, {"rows", rows()}, {"cols", cols()}};
}

WeightPtr load_olive(const TensorSource& src, const std::string& prefix, const nlohmann::json& spec) {
  int group = 0;
  int64_t rows = 0, cols = 0;
  try {
    group = spec.at("group").get<int>();
    rows = spec.at("rows").get<int64_t>();
    cols = spec.at("cols").get<int64_t>();
  } catch (const std::exception& e) {
    fail("{}: {}: olive spec {} lacks group/rows/cols ({})", src.where(), prefix, spec.dump(), e.what());
  }
  check(OliveMatrix::supported_group(group) && rows > 0 && cols > 0 &&
            spec.value("format", "") == OliveMatrix::format_name(group),
        "{}: {}: unsupported olive spec {}", src.where(), prefix, spec.dump());
  const int64_t gs = group ? group : cols, ng = (cols + gs - 1) / gs;
  auto get = [&](const char* part, DType dt, int64_t c) {
    return stored_tensor(src, prefix + "." + part, dt, {rows, c});
  };
  const uint8_t* codes = get("qweight", DType::U8, (cols + 1) / 2);
  const f16_t* scales = reinterpret_cast<const f16_t*>(get("scales", DType::F16, ng));
  return std::make_unique<OliveMatrix>(rows, cols, group, codes, scales, src.keeper());
}

}  // namespace lmp

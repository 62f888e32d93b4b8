#include "quant/grid.h"

#include <algorithm>

#include "core/error.h"
#include "core/half.h"

namespace lmp {

GroupParams params_for_range(float lo, float hi, const QuantGrid& grid) {
  const int maxq = grid.maxq();
  GroupParams p;
  if (grid.sym) {
    float m = std::max(std::fabs(lo), std::fabs(hi));
    if (m == 0) m = 1;  // GPTQ: lo = −1, hi = +1
    p.scale = f16_ceil(2 * m / float(maxq));
    p.zero = (maxq + 1) / 2;
    return p;
  }
  lo = std::min(lo, 0.0f);
  hi = std::max(hi, 0.0f);
  if (lo == 0 && hi == 0) lo = -1, hi = 1;
  p.scale = f16_ceil((hi - lo) / float(maxq));
  p.zero = std::clamp(int(std::nearbyint(-lo / p.scale)), 0, maxq);
  return p;
}

void quantize_group(const float* w, int64_t n, GroupParams p, int bits, uint8_t* q) {
  for (int64_t i = 0; i < n; i++) q[i] = uint8_t(quantize_value(w[i], p, bits));
}

static double group_sq_error(const float* w, int64_t n, GroupParams p, int bits) {
  double e = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = double(w[i]) - double(dequant(quantize_value(w[i], p, bits), p));
    e += d * d;
  }
  return e;
}

GroupParams find_params(const float* w, int64_t n, const QuantGrid& grid) {
  check(grid.bits >= 1 && grid.bits <= 8, "quantizer grid: {} bits, want 1..8", grid.bits);
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < n; i++) lo = std::min(lo, w[i]), hi = std::max(hi, w[i]);
  GroupParams best = params_for_range(lo, hi, grid);
  if (!grid.mse || n == 0) return best;
  double best_err = group_sq_error(w, n, best, grid.bits);
  const int last = int(grid.max_shrink * float(grid.shrink_steps));
  for (int i = 1; i <= last; i++) {
    float p = 1.0f - float(i) / float(grid.shrink_steps);
    GroupParams c = params_for_range(p * lo, p * hi, grid);
    double e = group_sq_error(w, n, c, grid.bits);
    if (e < best_err) best_err = e, best = c;
  }
  return best;
}

}  // namespace lmp

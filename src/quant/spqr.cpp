#include "quant/spqr.h"

#include <algorithm>
#include <cmath>

#include "calib/obs_solver.h"
#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

// First-level min–max grid of one row's group: ŵ = (q − z)·s, q ∈ [0, maxq], z real (not rounded, as in SpQR).
struct Fit {
  float s, z;
};

Fit fit_range(float lo, float hi, int maxq) {
  if (!(hi - lo > 1e-2f * std::max(std::fabs(lo), std::fabs(hi)))) {  // (near) constant group: include 0
    lo = std::min(lo, 0.0f), hi = std::max(hi, 0.0f);
    if (hi == lo) lo = -1, hi = 1;
  }
  const float s = (hi - lo) / float(maxq);
  return {s, -lo / s};
}

inline int quantize_code(float w, float s, float z, int maxq) {
  return int(std::clamp(std::nearbyint(w / s + z), 0.0f, float(maxq)));
}

// H-weighted squared error of the group v (n) on the min–max grid of its values except index `skip` (−1: none);
// the skipped value itself costs nothing (it would be kept exactly).
double group_error(const float* v, const float* d, int n, int skip, int maxq) {
  float lo = INFINITY, hi = -INFINITY;
  for (int i = 0; i < n; i++)
    if (i != skip) lo = std::min(lo, v[i]), hi = std::max(hi, v[i]);
  if (lo > hi) return 0;
  const Fit f = fit_range(lo, hi, maxq);
  double e = 0;
  for (int i = 0; i < n; i++) {
    if (i == skip) continue;
    double r = (double(v[i]) - spqr_dequant(quantize_code(v[i], f.s, f.z, maxq), f.s, f.z)) / d[i];
    e += r * r;
  }
  return e;
}

// The per-column SpQR rule (see quant/spqr.h).
class SpqrStep final : public ObsStep {
 public:
  SpqrStep(const float* W, int64_t rows, int64_t cols, const SpqrOptions& o)
      : W_(W), o_(o), l_(o.layout), rows_(rows), cols_(cols), ng_(l_.ngroups(cols)), maxq_((1 << l_.bits) - 1),
        codes_(size_t(rows * cols)), scode_(size_t(rows * ng_)), zcode_(size_t(rows * ng_)),
        stats_(size_t(l_.nrowgroups(rows) * ng_ * 4)), S_(size_t(rows)), Z_(size_t(rows)), outliers_(size_t(rows)) {}

  void begin(const float* U, int64_t cols) override {
    d_.resize(size_t(cols));
    double scale = 0;
    for (int64_t j = 0; j < cols; j++) {
      d_[size_t(j)] = U[j * cols + j];
      double m = 0, m2 = 0;
      for (int64_t r = 0; r < rows_; r++) m += W_[r * cols + j], m2 += double(W_[r * cols + j]) * W_[r * cols + j];
      m /= double(rows_);
      scale += std::max(0.0, m2 / double(rows_) - m * m) / (double(d_[size_t(j)]) * d_[size_t(j)]);
    }
    tau_ = o_.threshold * scale / double(cols);
  }

  void column(const ObsBlock& b, int64_t c, const float* w, float* q) override {
    if (c % l_.group == 0) fit_group(b, c);
    const float d = d_[size_t(c)];
    for (int64_t r = 0; r < rows_; r++) {
      const float s = S_[size_t(r)], z = Z_[size_t(r)];
      const int code = quantize_code(w[r], s, z, maxq_);
      codes_[size_t(r * cols_ + c)] = uint8_t(code);
      q[r] = spqr_dequant(code, s, z);
      const float e = (w[r] - q[r]) / d;
      if (o_.threshold > 0 && double(e) * e > tau_) {  // keep the weight: store its f16 residual
        const float delta = w[r] - q[r];
        outliers_[size_t(r)].push_back({int32_t(c), delta});
        q[r] += f16_to_f32(f32_to_f16(delta));
      }
    }
  }

  std::unique_ptr<SpqrMatrix> matrix() const {
    return std::make_unique<SpqrMatrix>(rows_, cols_, l_, codes_.data(), scode_.data(), zcode_.data(), stats_,
                                        outliers_);
  }
  double tau() const { return tau_; }

 private:
  // Statistics of group g = c / β1 for every row from the block's current columns [c, c + n), likely outliers
  // left out of the fit; then the second-level quantization of those statistics over β2 rows at a time.
  void fit_group(const ObsBlock& b, int64_t c) {
    const int64_t g = c / l_.group;
    const int n = int(std::min<int64_t>(l_.group, cols_ - c));
    check(c + n <= b.i2, "spqr: group at column {} straddles a lazy block (block must be a multiple of group)", c);
    std::vector<float> v(static_cast<size_t>(n)), s(static_cast<size_t>(rows_)), z(static_cast<size_t>(rows_));
    const float* d = d_.data() + c;
    for (int64_t r = 0; r < rows_; r++) {
      for (int j = 0; j < n; j++) v[size_t(j)] = b.W1t[(c - b.i1 + j) * rows_ + r];
      std::vector<char> likely(static_cast<size_t>(n), 0);
      if (o_.threshold > 0) {
        const double base = group_error(v.data(), d, n, -1, maxq_);
        for (int j = 0; j < n; j++) likely[size_t(j)] = base - group_error(v.data(), d, n, j, maxq_) > tau_;
      }
      float lo = INFINITY, hi = -INFINITY;
      for (int j = 0; j < n; j++)
        if (!likely[size_t(j)]) lo = std::min(lo, v[size_t(j)]), hi = std::max(hi, v[size_t(j)]);
      if (lo > hi) lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
      const Fit f = fit_range(lo, hi, maxq_);
      s[size_t(r)] = f.s, z[size_t(r)] = f.z;
    }
    std::vector<uint8_t> cs(static_cast<size_t>(l_.stat_group)), cz(static_cast<size_t>(l_.stat_group));
    for (int64_t R = 0; R < l_.nrowgroups(rows_); R++) {
      const int64_t r0 = R * l_.stat_group, m = std::min<int64_t>(l_.stat_group, rows_ - r0);
      const SpqrStatGrid gs = spqr_quantize_stats(s.data() + r0, m, l_.stat_bits, cs.data());
      const SpqrStatGrid gz = spqr_quantize_stats(z.data() + r0, m, l_.stat_bits, cz.data());
      f16_t* st = stats_.data() + (R * ng_ + g) * 4;
      st[0] = gs.step, st[1] = gs.base, st[2] = gz.step, st[3] = gz.base;
      for (int64_t i = 0; i < m; i++) {
        const int64_t r = r0 + i;
        scode_[size_t(r * ng_ + g)] = cs[size_t(i)], zcode_[size_t(r * ng_ + g)] = cz[size_t(i)];
        S_[size_t(r)] = spqr_stat(cs[size_t(i)], gs.step, gs.base);
        Z_[size_t(r)] = spqr_stat(cz[size_t(i)], gz.step, gz.base);
      }
    }
  }

  const float* W_;
  SpqrOptions o_;
  SpqrLayout l_;
  int64_t rows_, cols_, ng_;
  int maxq_;
  std::vector<uint8_t> codes_, scode_, zcode_;
  std::vector<f16_t> stats_;
  std::vector<float> S_, Z_, d_;  // current group's dequantized statistics per row; U_ii
  std::vector<std::vector<SpqrOutlier>> outliers_;
  double tau_ = 0;
};

}  // namespace

SpqrResult spqr_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                         const SpqrOptions& o, const std::string& what) {
  check_spqr_layout(o.layout, rows, cols, what);
  check(o.threshold >= 0 && std::isfinite(o.threshold), "{}: spqr threshold {} must be ≥ 0", what, o.threshold);
  check(o.block > 0 && o.block % o.layout.group == 0, "{}: spqr block {} must be a multiple of group {}", what,
        o.block, o.layout.group);
  SpqrStep step(W, rows, cols, o);
  ObsOptions so;
  so.damp = o.damp;
  so.block = o.block;
  std::vector<float> Wq(W, W + rows * cols);
  ObsResult r = obs_sweep(Wq.data(), rows, cols, H, step, so, what);
  SpqrResult res;
  res.q = step.matrix();
  res.loss = r.loss;
  res.damp_used = r.damp_used;
  res.tau = step.tau();
  return res;
}

namespace {

class SpqrModifier final : public BlockModifier {
 public:
  explicit SpqrModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.layout.bits = int(stage_int(st, "bits", 3, 1, 16, "spqr"));
    o_.layout.group = int(stage_int(st, "group", 16, 1, 1 << 20, "spqr"));
    o_.layout.stat_bits = int(stage_int(st, "stat_bits", 3, 1, 16, "spqr"));
    o_.layout.stat_group = int(stage_int(st, "stat_group", 16, 1, 1 << 20, "spqr"));
    o_.threshold = stage_real(st, "threshold", 0.2, 0.0, 1e9, "spqr");
    o_.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, "spqr");
    o_.block = int(stage_int(st, "block", 128, 1, 1 << 16, "spqr"));
    check(!st.value("sym", false) && !st.value("mse", false), "spqr: --sym and --mse are not supported "
                                                              "(asymmetric min–max groups with quantized zeros)");
    check_spqr_layout(o_.layout, 1, 1, "spqr");
    check(o_.block % o_.layout.group == 0, "spqr: block {} must be a multiple of group {}", o_.block, o_.layout.group);
  }
  std::string name() const override { return "spqr"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const std::string& name, Linear& lin) {
                      std::vector<float> W = lin.w->dense();
                      lin.w = spqr_quantize(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), o_, name).q;
                    });
  }

 private:
  Targets targets_;
  SpqrOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_spqr_modifier(const nlohmann::json& stage) {
  return std::make_unique<SpqrModifier>(stage);
}

}  // namespace lmp

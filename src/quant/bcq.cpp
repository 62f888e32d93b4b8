#include "quant/bcq.h"

#include <cmath>

#include "calib/targets.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

// Solves A a = b (q×q, symmetric PSD) by Gaussian elimination with a tiny ridge; false when singular.
bool solve_small(std::vector<double> A, std::vector<double> b, int q, std::vector<double>* x) {
  double tr = 0;
  for (int i = 0; i < q; i++) tr += A[size_t(i * q + i)];
  for (int i = 0; i < q; i++) A[size_t(i * q + i)] += 1e-12 * tr / q + 1e-30;
  for (int i = 0; i < q; i++) {
    int p = i;
    for (int j = i + 1; j < q; j++)
      if (std::fabs(A[size_t(j * q + i)]) > std::fabs(A[size_t(p * q + i)])) p = j;
    if (std::fabs(A[size_t(p * q + i)]) < 1e-300) return false;
    for (int k = 0; k < q; k++) std::swap(A[size_t(i * q + k)], A[size_t(p * q + k)]);
    std::swap(b[size_t(i)], b[size_t(p)]);
    for (int j = i + 1; j < q; j++) {
      double f = A[size_t(j * q + i)] / A[size_t(i * q + i)];
      for (int k = i; k < q; k++) A[size_t(j * q + k)] -= f * A[size_t(i * q + k)];
      b[size_t(j)] -= f * b[size_t(i)];
    }
  }
  x->assign(size_t(q), 0.0);
  for (int i = q - 1; i >= 0; i--) {
    double v = b[size_t(i)];
    for (int k = i + 1; k < q; k++) v -= A[size_t(i * q + k)] * (*x)[size_t(k)];
    (*x)[size_t(i)] = v / A[size_t(i * q + i)];
  }
  return true;
}

double sq_error(const float* w, int64_t n, const std::vector<uint8_t>& pat, const std::vector<double>& a, int q) {
  double e = 0;
  for (int64_t c = 0; c < n; c++) {
    double v = 0;
    for (int i = 0; i < q; i++) v += (pat[size_t(c)] >> i & 1) ? a[size_t(i)] : -a[size_t(i)];
    e += (w[c] - v) * (w[c] - v);
  }
  return e;
}

// Each weight takes the sign pattern (bit i = plane i positive) whose value is nearest.
void assign_patterns(const float* w, int64_t n, const std::vector<double>& a, int q, std::vector<uint8_t>* pat) {
  const int P = 1 << q;
  std::vector<double> val(size_t(P), 0.0);
  for (int m = 0; m < P; m++)
    for (int i = 0; i < q; i++) val[size_t(m)] += (m >> i & 1) ? a[size_t(i)] : -a[size_t(i)];
  for (int64_t c = 0; c < n; c++) {
    int best = 0;
    double bd = INFINITY;
    for (int m = 0; m < P; m++) {
      double d = std::fabs(w[c] - val[size_t(m)]);
      if (d < bd) bd = d, best = m;
    }
    (*pat)[size_t(c)] = uint8_t(best);
  }
}

// One group w[0..n): α (q) and patterns (n).
void fit_group(const float* w, int64_t n, const BcqOptions& o, std::vector<double>* a, std::vector<uint8_t>* pat) {
  a->assign(size_t(o.q), 0.0);
  pat->assign(size_t(n), 0);
  std::vector<double> res(w, w + n), A, b, x;
  for (int q = 1; q <= o.q; q++) {
    // Greedy: the new plane is sign(residual) with α = mean|residual|.
    double m = 0;
    for (int64_t c = 0; c < n; c++) m += std::fabs(res[size_t(c)]);
    (*a)[size_t(q - 1)] = m / double(n);
    for (int64_t c = 0; c < n; c++)
      if (res[size_t(c)] >= 0) (*pat)[size_t(c)] |= uint8_t(1 << (q - 1));
    // Alternating refinement over the q planes so far.
    std::vector<double> aq(a->begin(), a->begin() + q);
    double err = sq_error(w, n, *pat, aq, q);
    for (int it = 0; it < o.iters; it++) {
      A.assign(size_t(q * q), 0.0);
      b.assign(size_t(q), 0.0);
      for (int64_t c = 0; c < n; c++)
        for (int i = 0; i < q; i++) {
          double bi = ((*pat)[size_t(c)] >> i & 1) ? 1 : -1;
          b[size_t(i)] += bi * w[c];
          for (int j = 0; j < q; j++) A[size_t(i * q + j)] += bi * (((*pat)[size_t(c)] >> j & 1) ? 1 : -1);
        }
      if (!solve_small(A, b, q, &x)) break;
      std::vector<uint8_t> p2(*pat);
      assign_patterns(w, n, x, q, &p2);
      double e2 = sq_error(w, n, p2, x, q);
      if (!(e2 < err)) break;  // converged (or no gain): keep the better solution
      err = e2, aq = x, *pat = p2;
    }
    for (int i = 0; i < q; i++) (*a)[size_t(i)] = aq[size_t(i)];
    for (int64_t c = 0; c < n; c++) {
      double v = 0;
      for (int i = 0; i < q; i++) v += ((*pat)[size_t(c)] >> i & 1) ? aq[size_t(i)] : -aq[size_t(i)];
      res[size_t(c)] = w[c] - v;
    }
  }
  // As stored: α in f16, then the nearest patterns for those α (never worse than keeping the old ones).
  for (auto& v : *a) v = f16_to_f32(f32_to_f16(float(v)));
  std::vector<uint8_t> p2(*pat);
  assign_patterns(w, n, *a, o.q, &p2);
  if (sq_error(w, n, p2, *a, o.q) <= sq_error(w, n, *pat, *a, o.q)) *pat = p2;
}

}  // namespace

std::unique_ptr<BcqMatrix> bcq_quantize(const float* W, int64_t rows, int64_t cols, const BcqOptions& o) {
  check(BcqMatrix::supported(o.q, o.group), "bcq: {} bit-planes with group {} is not supported (1..8 planes, group "
        "a multiple of 8 or 0)", o.q, o.group);
  const int64_t gs = o.group ? o.group : cols, ng = (cols + gs - 1) / gs;
  std::vector<uint8_t> signs(size_t(o.q * rows * cols));
  std::vector<float> alpha(size_t(o.q * rows * ng));
#pragma omp parallel for schedule(dynamic)
  for (int64_t r = 0; r < rows; r++) {
    std::vector<double> a;
    std::vector<uint8_t> pat;
    for (int64_t g = 0; g < ng; g++) {
      const int64_t c0 = g * gs, n = std::min(gs, cols - c0);
      fit_group(W + r * cols + c0, n, o, &a, &pat);
      for (int i = 0; i < o.q; i++) {
        alpha[size_t((i * rows + r) * ng + g)] = float(a[size_t(i)]);
        for (int64_t c = 0; c < n; c++) signs[size_t((i * rows + r) * cols + c0 + c)] = pat[size_t(c)] >> i & 1;
      }
    }
  }
  return std::make_unique<BcqMatrix>(rows, cols, o.q, o.group, signs.data(), alpha.data());
}

namespace {

class BcqModifier final : public BlockModifier {
 public:
  explicit BcqModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.q = int(stage_int(st, "bits", 3, 1, 8, "bcq"));
    o_.group = int(stage_int(st, "group", 0, 0, 1 << 20, "bcq"));
    o_.iters = int(stage_int(st, "iters", 15, 0, 1000, "bcq"));
    check(o_.group % 8 == 0, "bcq: --group {} is not a multiple of 8", o_.group);
  }
  std::string name() const override { return "bcq"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      return bcq_quantize(W.data(), lin.out(), lin.in(), o_);
                    });
  }

 private:
  Targets targets_;
  BcqOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_bcq_modifier(const nlohmann::json& stage) {
  return std::make_unique<BcqModifier>(stage);
}

}  // namespace lmp

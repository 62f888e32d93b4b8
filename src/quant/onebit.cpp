#include "quant/onebit.h"

#include <cblas.h>
#include <lapacke.h>

#include <cmath>

#include "calib/targets.h"
#include "core/error.h"
#include "lowrank/truncated_svd.h"
#include "quant/quant_args.h"

namespace lmp {

OneBitFactors svid(const float* W, int64_t rows, int64_t cols, const std::string& what) {
  std::vector<double> A(size_t(rows * cols));
  for (size_t i = 0; i < A.size(); i++) A[i] = std::fabs(double(W[i]));
  Svd s = thin_svd(A, rows, cols, what);
  const double r = std::sqrt(s.s[0]);
  double su = 0;
  for (int64_t i = 0; i < rows; i++) su += s.U[size_t(i * s.p)];
  const double sg = su < 0 ? -r : r;  // Perron–Frobenius: the non-negative singular pair
  OneBitFactors f;
  for (int64_t i = 0; i < rows; i++) f.g.push_back(float(std::max(0.0, sg * s.U[size_t(i * s.p)])));
  for (int64_t j = 0; j < cols; j++) f.h.push_back(float(std::max(0.0, sg * s.Vt[size_t(j)])));
  return f;
}

namespace {

// tr(ΔW·Hd·ΔWᵀ) for Ŵ = diag(g) S diag(h).
double hessian_loss(const float* W, int64_t rows, int64_t cols, const std::vector<double>& Hd, const OneBitFactors& f) {
  std::vector<double> d(static_cast<size_t>(cols)), t(static_cast<size_t>(cols));
  double loss = 0;
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++)
      d[size_t(c)] = W[r * cols + c] - (W[r * cols + c] >= 0 ? 1.0 : -1.0) * f.g[size_t(r)] * f.h[size_t(c)];
    cblas_dsymv(CblasRowMajor, CblasUpper, int(cols), 1.0, Hd.data(), int(cols), d.data(), 1, 0.0, t.data(), 1);
    loss += cblas_ddot(int(cols), d.data(), 1, t.data(), 1);
  }
  return loss;
}

}  // namespace

std::vector<double> onebit_refine(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                  double damp, int iters, OneBitFactors* f) {
  const int n = int(cols);
  std::vector<double> Hd = H;
  double mean = 0;
  for (int64_t c = 0; c < cols; c++) mean += H[size_t(c * cols + c)] / double(cols);
  for (int64_t c = 0; c < cols; c++) Hd[size_t(c * cols + c)] += damp * mean + 1e-12;
  // S (rows × cols) as ±1, W·Hd (rows × cols).
  std::vector<double> S(size_t(rows * cols)), Wd(W, W + rows * cols), WH(size_t(rows * cols));
  for (size_t i = 0; i < S.size(); i++) S[i] = W[i] >= 0 ? 1.0 : -1.0;
  cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, int(rows), n, 1.0, Hd.data(), n, Wd.data(), n, 0.0, WH.data(), n);
  std::vector<double> hist = {hessian_loss(W, rows, cols, Hd, *f)};
  std::vector<double> z(static_cast<size_t>(cols)), Hz(static_cast<size_t>(cols));
  for (int it = 0; it < iters; it++) {
    const OneBitFactors prev = *f;
    for (int64_t r = 0; r < rows; r++) {  // g-step
      for (int64_t c = 0; c < cols; c++) z[size_t(c)] = S[size_t(r * cols + c)] * f->h[size_t(c)];
      cblas_dsymv(CblasRowMajor, CblasUpper, n, 1.0, Hd.data(), n, z.data(), 1, 0.0, Hz.data(), 1);
      const double den = cblas_ddot(n, z.data(), 1, Hz.data(), 1);
      if (den > 0) f->g[size_t(r)] = float(cblas_ddot(n, z.data(), 1, WH.data() + r * cols, 1) / den);
    }
    // h-step: A = Hd ∘ (Sᵀ diag(g²) S), b_i = Σ_r g_r s_ri (W Hd)_ri.
    std::vector<double> GS(size_t(rows * cols)), A(size_t(cols * cols)), b(static_cast<size_t>(cols), 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) {
        GS[size_t(r * cols + c)] = double(f->g[size_t(r)]) * S[size_t(r * cols + c)];
        b[size_t(c)] += GS[size_t(r * cols + c)] * WH[size_t(r * cols + c)];
      }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, int(rows), 1.0, GS.data(), n, GS.data(), n, 0.0,
                A.data(), n);
    for (size_t i = 0; i < A.size(); i++) A[i] *= Hd[i];
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', n, 1, A.data(), n, b.data(), 1) == 0)
      for (int64_t c = 0; c < cols; c++) f->h[size_t(c)] = float(b[size_t(c)]);
    // Stored in f16: keep the round only if the rounded factors did not raise the loss.
    OneBitFactors rounded = *f;
    for (auto& v : rounded.g) v = f16_to_f32(f32_to_f16(v));
    for (auto& v : rounded.h) v = f16_to_f32(f32_to_f16(v));
    const double loss = hessian_loss(W, rows, cols, Hd, rounded);
    if (!std::isfinite(loss) || loss > hist.back()) {
      *f = prev;
      break;
    }
    hist.push_back(loss);
  }
  return hist;
}

std::unique_ptr<OneBitMatrix> onebit_matrix(const float* W, int64_t rows, int64_t cols, const OneBitFactors& f) {
  std::vector<uint8_t> s(size_t(rows * cols));
  for (size_t i = 0; i < s.size(); i++) s[i] = W[i] >= 0;
  return std::make_unique<OneBitMatrix>(rows, cols, s.data(), f.g.data(), f.h.data());
}

namespace {

class OneBitModifier final : public BlockModifier {
 public:
  explicit OneBitModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    iters_ = int(stage_int(st, "hessian_iters", 0, 0, 1000, "onebit"));
    damp_ = stage_real(st, "damp", 0.01, 0.0, 1.0, "onebit");
  }
  std::string name() const override { return "onebit"; }
  StatsRequest stats_request() const override { return {iters_ > 0, false}; }
  bool needs_calibration() const override { return iters_ > 0; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const std::string& name, Linear& lin) {
                      std::vector<float> W = lin.w->dense();
                      OneBitFactors f = svid(W.data(), lin.out(), lin.in(), name);
                      if (iters_ > 0)
                        onebit_refine(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), damp_, iters_, &f);
                      lin.w = onebit_matrix(W.data(), lin.out(), lin.in(), f);
                    });
  }

 private:
  Targets targets_;
  int iters_ = 0;
  double damp_ = 0.01;
};

}  // namespace

std::unique_ptr<BlockModifier> make_onebit_modifier(const nlohmann::json& stage) {
  return std::make_unique<OneBitModifier>(stage);
}

}  // namespace lmp

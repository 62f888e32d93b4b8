#include "quant/quantease.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/qint.h"
#include "kernels/residual.h"
#include "kernels/sparse.h"
#include "quant/gptq.h"
#include "quant/quant_args.h"

namespace lmp {

double layer_objective(const float* W, const float* Wq, int64_t rows, int64_t cols, const std::vector<double>& S) {
  double f = 0;
  std::vector<double> d(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t c = 0; c < cols; c++) d[size_t(c)] = double(W[r * cols + c]) - Wq[r * cols + c];
    for (int64_t i = 0; i < cols; i++) {
      double g = 0;
      for (int64_t j = 0; j < cols; j++) g += S[size_t(i * cols + j)] * d[size_t(j)];
      f += d[size_t(i)] * g;
    }
  }
  return f;
}

namespace {

// The quantized part during the descent: codes on a fixed grid (params per row and group) and their values.
struct GridState {
  QuantGrid grid;
  int64_t rows = 0, cols = 0, gs = 0, ng = 0;
  std::vector<GroupParams> params;  // (rows, ng)
  std::vector<uint8_t> codes;       // (rows, cols)
  std::vector<float> value;         // (rows, cols) dequantized

  explicit GridState(const QIntMatrix& q) : grid(q.grid()), rows(q.rows()), cols(q.cols()) {
    gs = grid.group_size(cols), ng = q.ngroups();
    params.resize(size_t(rows * ng)), codes.resize(size_t(rows * cols)), value.resize(size_t(rows * cols));
    for (int64_t r = 0; r < rows; r++) {
      q.unpack_row(r, codes.data() + r * cols);
      for (int64_t g = 0; g < ng; g++) params[size_t(r * ng + g)] = q.params(r, g);
      for (int64_t c = 0; c < cols; c++)
        value[size_t(r * cols + c)] = dequant(codes[size_t(r * cols + c)], params[size_t(r * ng + c / gs)]);
    }
  }
  std::unique_ptr<QIntMatrix> matrix() const {
    std::vector<float> sc(params.size());
    std::vector<uint8_t> z(params.size());
    for (size_t i = 0; i < params.size(); i++) sc[i] = params[i].scale, z[i] = uint8_t(params[i].zero);
    return QIntMatrix::from_codes(rows, cols, grid, codes.data(), sc.data(), grid.sym ? nullptr : z.data());
  }
};

// G = (T − Ŵ) Σ, (rows × cols).
std::vector<double> residual_times_sigma(const std::vector<float>& T, const std::vector<float>& Wq, int64_t rows,
                                         int64_t cols, const std::vector<double>& S) {
  std::vector<double> D(size_t(rows * cols)), G(size_t(rows * cols), 0.0);
  for (size_t i = 0; i < D.size(); i++) D[i] = double(T[i]) - Wq[i];
  for (int64_t r = 0; r < rows; r++)
    for (int64_t k = 0; k < cols; k++) {
      const double d = D[size_t(r * cols + k)];
      if (d == 0) continue;
      for (int64_t j = 0; j < cols; j++) G[size_t(r * cols + j)] += d * S[size_t(k * cols + j)];
    }
  return G;
}

// One cyclic pass over the columns: every ŵ_rj moves to the grid value nearest to its exact 1-D minimiser.
void cd_pass(const std::vector<float>& T, const std::vector<double>& S, GridState& st) {
  const int64_t R = st.rows, C = st.cols;
  std::vector<double> G = residual_times_sigma(T, st.value, R, C, S);
  for (int64_t j = 0; j < C; j++) {
    const double sjj = S[size_t(j * C + j)];
    if (!(sjj > 0)) continue;  // a dead input: ŵ_rj does not change f
    for (int64_t r = 0; r < R; r++) {
      const size_t i = size_t(r * C + j);
      const GroupParams p = st.params[size_t(r * st.ng + j / st.gs)];
      const int q = quantize_value(float(st.value[i] + G[i] / sjj), p, st.grid.bits);
      const float v = dequant(q, p);
      const double d = double(v) - st.value[i];
      if (d == 0) continue;
      st.codes[i] = uint8_t(q), st.value[i] = v;
      for (int64_t k = 0; k < C; k++) G[size_t(r * C + k)] -= d * S[size_t(j * C + k)];
    }
  }
}

double largest_eigenvalue(const std::vector<double>& S, int64_t n, const std::string& what) {
  std::vector<double> A = S, w(static_cast<size_t>(n)), z(1);
  std::vector<int> isuppz(2);
  int found = 0;
  int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'N', 'I', 'U', int(n), A.data(), int(n), 0, 0, int(n), int(n), 0.0,
                            &found, w.data(), z.data(), 1, isuppz.data());
  check(info == 0 && found == 1, "quantease: {}: eigenvalue solver failed (info {})", what, info);
  return w[0];
}

// s-sparse S: keep the s entries of V with the largest |value|.
void keep_top(std::vector<double>& V, int64_t s, const std::vector<double>& score) {
  std::vector<int64_t> idx(V.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + s, idx.end(),
                   [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
  std::vector<char> keep(V.size(), 0);
  for (int64_t i = 0; i < s; i++) keep[size_t(idx[size_t(i)])] = 1;
  for (size_t i = 0; i < V.size(); i++)
    if (!keep[i]) V[i] = 0;
}

std::unique_ptr<QIntMatrix> initial(const std::vector<float>& T, int64_t rows, int64_t cols,
                                    const std::vector<double>& S, const QuantEaseOptions& o, const std::string& what) {
  if (!o.init_gptq) return QIntMatrix::quantize(rows, cols, T.data(), o.grid);
  GptqOptions g;
  g.grid = o.grid, g.damp = o.damp;
  return gptq_quantize(T.data(), rows, cols, S, g, what).q;
}

}  // namespace

QuantEaseResult quantease_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& S,
                                   const QuantEaseOptions& o, const std::string& what) {
  check(S.size() == size_t(cols * cols), "quantease: {}: Σ has {} entries, want {}²", what, S.size(), cols);
  const size_t N = size_t(rows * cols);
  const int64_t s = o.outlier_frac > 0 ? std::max<int64_t>(1, int64_t(o.outlier_frac * double(N))) : 0;
  std::vector<double> Sp(N, 0.0);  // the outliers (f64 during the descent)
  if (s > 0) {
    std::vector<double> score(N);
    for (size_t i = 0; i < N; i++) score[i] = double(W[i]) * W[i] * S[(i % size_t(cols)) * size_t(cols + 1)];
    for (size_t i = 0; i < N; i++) Sp[i] = W[i];
    keep_top(Sp, s, score);
  }
  std::vector<float> T(N);  // what the grid part approximates: W − S
  auto set_target = [&] {
    for (size_t i = 0; i < N; i++) T[i] = float(double(W[i]) - Sp[i]);
  };
  set_target();
  GridState st(*initial(T, rows, cols, S, o, what));
  QuantEaseResult res;
  res.history.push_back(layer_objective(T.data(), st.value.data(), rows, cols, S));
  const double L = s > 0 ? largest_eigenvalue(S, cols, what) : 0;
  for (int it = 0; it < o.iters; it++) {
    cd_pass(T, S, st);
    res.history.push_back(layer_objective(T.data(), st.value.data(), rows, cols, S));
    if (s == 0 || !(L > 0)) continue;
    // IHT step on S: the gradient of f in S is −2 (W − Ŵ − S) Σ = −2 G.
    std::vector<double> G = residual_times_sigma(T, st.value, rows, cols, S), score(N);
    for (size_t i = 0; i < N; i++) Sp[i] += G[i] / L, score[i] = std::fabs(Sp[i]);
    keep_top(Sp, s, score);
    set_target();
    res.history.push_back(layer_objective(T.data(), st.value.data(), rows, cols, S));
  }
  std::unique_ptr<QIntMatrix> q = st.matrix();
  if (s == 0) {
    res.w = std::move(q);
    return res;
  }
  std::vector<float> Sf(N);
  for (size_t i = 0; i < N; i++) Sf[i] = float(Sp[i]);
  res.w = std::make_unique<ResidualMatrix>(std::move(q), SparseBitmap::from_dense(rows, cols, Sf.data(), SparseValues::F16));
  return res;
}

namespace {

class QuantEaseModifier final : public BlockModifier {
 public:
  explicit QuantEaseModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.grid = grid_from_stage(st, "quantease");
    o_.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, "quantease");
    o_.iters = int(stage_int(st, "iters", 20, 0, 10000, "quantease"));
    o_.outlier_frac = stage_real(st, "outlier_frac", 0.0, 0.0, 0.5, "quantease");
    const std::string init = st.value("init", std::string("gptq"));
    check(init == "gptq" || init == "rtn", "quantease: init '{}' is not supported (gptq or rtn)", init);
    o_.init_gptq = init == "gptq";
  }
  std::string name() const override { return "quantease"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      return quantease_quantize(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), o_,
                                                linear_name(ctx.layer, k))
                          .w;
                    });
  }

 private:
  Targets targets_;
  QuantEaseOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_quantease_modifier(const nlohmann::json& stage) {
  return std::make_unique<QuantEaseModifier>(stage);
}

}  // namespace lmp

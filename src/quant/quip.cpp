#include "quant/quip.h"

#include <cmath>

#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

double incoherence_mu(const float* W, int64_t rows, int64_t cols) {
  double mx = 0, ss = 0;
  for (int64_t i = 0; i < rows * cols; i++) {
    mx = std::max(mx, std::fabs(double(W[i])));
    ss += double(W[i]) * W[i];
  }
  return ss > 0 ? mx * std::sqrt(double(rows) * double(cols)) / std::sqrt(ss) : 1.0;
}

// M (rows × cols, double): every row ← V row, then every column ← U column, i.e. M ← U M Vᵀ.
static void transform_both_sides(std::vector<double>& M, int64_t rows, int64_t cols, const RandomHadamard& u,
                                 const RandomHadamard& v) {
  for (int64_t r = 0; r < rows; r++) v.forward_ref(M.data() + r * cols);
  std::vector<double> col(static_cast<size_t>(rows));
  for (int64_t c = 0; c < cols; c++) {
    for (int64_t r = 0; r < rows; r++) col[size_t(r)] = M[size_t(r * cols + c)];
    u.forward_ref(col.data());
    for (int64_t r = 0; r < rows; r++) M[size_t(r * cols + c)] = col[size_t(r)];
  }
}

std::vector<float> incoherent_weights(const float* W, int64_t rows, int64_t cols, const RandomHadamard& u,
                                      const RandomHadamard& v) {
  std::vector<double> M(W, W + rows * cols);
  transform_both_sides(M, rows, cols, u, v);
  return std::vector<float>(M.begin(), M.end());
}

std::vector<double> incoherent_hessian(const std::vector<double>& H, const RandomHadamard& v) {
  std::vector<double> M = H;
  transform_both_sides(M, v.n(), v.n(), v, v);
  for (int64_t i = 0; i < v.n(); i++)  // symmetric up to rounding; make it exactly so for the Cholesky
    for (int64_t j = 0; j < i; j++) {
      double a = 0.5 * (M[size_t(i * v.n() + j)] + M[size_t(j * v.n() + i)]);
      M[size_t(i * v.n() + j)] = M[size_t(j * v.n() + i)] = a;
    }
  return M;
}

std::pair<uint64_t, uint64_t> quip_seeds(uint64_t seed, const std::string& what) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char c : what) h = (h ^ c) * 0x100000001b3ull;
  h ^= seed * 0x9E3779B97F4A7C15ull;
  const uint64_t a = h ? h : 1, b = h ^ 0xD1B54A32D192ED03ull;
  return {a, b ? b : 1};
}

std::unique_ptr<QuipMatrix> quip_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                          const QuipOptions& o, const std::string& what) {
  auto [su, sv] = quip_seeds(o.seed, what);
  if (!o.output_transform) su = 0;
  RandomHadamard u(rows, su), v(cols, sv);
  std::vector<float> Wp = incoherent_weights(W, rows, cols, u, v);
  std::vector<double> Hp = incoherent_hessian(H, v);
  return std::make_unique<QuipMatrix>(gptq_quantize(Wp.data(), rows, cols, Hp, o.gptq, what).q, su, sv);
}

namespace {

class QuipModifier final : public BlockModifier {
 public:
  explicit QuipModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.gptq = gptq_options_from_stage(st, "quip");
    o_.seed = uint64_t(stage_int(st, "seed", 0, 0, (1L << 62), "quip"));
    o_.output_transform = st.value("output_transform", true);
  }
  std::string name() const override { return "quip"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const std::string& name, Linear& lin) {
                      std::vector<float> W = lin.w->dense();
                      lin.w = quip_quantize(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), o_, name);
                    });
  }

 private:
  Targets targets_;
  QuipOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_quip_modifier(const nlohmann::json& stage) {
  return std::make_unique<QuipModifier>(stage);
}

}  // namespace lmp

#include "quant/gptq.h"

#include <algorithm>
#include <numeric>

#include "calib/obs_solver.h"
#include "calib/targets.h"
#include "core/error.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

// The per-column GPTQ rule: round to the group's grid; group parameters found at the group's first column.
class GptqStep final : public ObsStep {
 public:
  GptqStep(int64_t rows, int64_t cols, const GptqOptions& o, const float* W)
      : o_(o), rows_(rows), cols_(cols), gs_(o.grid.group_size(cols)), ng_(o.grid.ngroups(cols)),
        codes_(size_t(rows * cols)), params_(size_t(rows * ng_)) {
    if (o.act_order) {  // static groups: parameters of the original weights, before any update
      for (int64_t r = 0; r < rows; r++)
        for (int64_t g = 0; g < ng_; g++)
          params_[size_t(r * ng_ + g)] = find_params(W + r * cols + g * gs_, std::min(gs_, cols - g * gs_), o.grid);
    }
  }

  void column(const ObsBlock& b, int64_t i, const float* w, float* q) override {
    const int64_t c = perm_.empty() ? i : perm_[size_t(i)];  // original column index
    const int64_t g = c / gs_;
    if (!o_.act_order && c % gs_ == 0) find_group_params(b, c, g);
    for (int64_t r = 0; r < rows_; r++) {
      GroupParams p = params_[size_t(r * ng_ + g)];
      int code = quantize_value(w[r], p, o_.grid.bits);
      codes_[size_t(r * cols_ + c)] = uint8_t(code);
      q[r] = dequant(code, p);
    }
  }

  void set_perm(std::vector<int> perm) { perm_ = std::move(perm); }
  const std::vector<uint8_t>& codes() const { return codes_; }
  std::vector<float> scales() const {
    std::vector<float> s(params_.size());
    for (size_t i = 0; i < s.size(); i++) s[i] = params_[i].scale;
    return s;
  }
  std::vector<uint8_t> zeros() const {
    std::vector<uint8_t> z(params_.size());
    for (size_t i = 0; i < z.size(); i++) z[i] = uint8_t(params_[i].zero);
    return z;
  }

 private:
  // Natural order: columns [c, c + gs) as they stand in Wt when the current block began.
  void find_group_params(const ObsBlock& b, int64_t c, int64_t g) {
    const int64_t n = std::min(gs_, cols_ - c);
    std::vector<float> row(static_cast<size_t>(n));
    for (int64_t r = 0; r < rows_; r++) {
      for (int64_t j = 0; j < n; j++) row[size_t(j)] = b.Wt[(c + j) * rows_ + r];
      params_[size_t(r * ng_ + g)] = find_params(row.data(), n, o_.grid);
    }
  }

  GptqOptions o_;
  int64_t rows_, cols_, gs_, ng_;
  std::vector<uint8_t> codes_;
  std::vector<GroupParams> params_;
  std::vector<int> perm_;
};

}  // namespace

GptqResult gptq_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                         const GptqOptions& o, const std::string& what) {
  check(QIntMatrix::supported(o.grid), "{}: GPTQ grid of {} bits, group {} is not a supported stored format", what,
        o.grid.bits, o.grid.group);
  GptqStep step(rows, cols, o, W);
  ObsOptions so;
  so.damp = o.damp;
  so.block = o.block;
  if (o.act_order) {  // descending diag(H)
    so.perm.resize(size_t(cols));
    std::iota(so.perm.begin(), so.perm.end(), 0);
    std::stable_sort(so.perm.begin(), so.perm.end(),
                     [&](int a, int b) { return H[size_t(a) * cols + a] > H[size_t(b) * cols + b]; });
    step.set_perm(so.perm);
  }
  std::vector<float> Wq(W, W + rows * cols);
  ObsResult r = obs_sweep(Wq.data(), rows, cols, H, step, so, what);
  GptqResult res;
  auto scales = step.scales();
  auto zeros = step.zeros();
  res.q = QIntMatrix::from_codes(rows, cols, o.grid, step.codes().data(), scales.data(),
                                 o.grid.sym ? nullptr : zeros.data());
  res.loss = r.loss;
  res.damp_used = r.damp_used;
  return res;
}

GptqOptions gptq_options_from_stage(const nlohmann::json& st, const char* modifier) {
  GptqOptions o;
  o.grid = grid_from_stage(st, modifier);
  o.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, modifier);
  o.block = int(stage_int(st, "block", 128, 1, 1 << 16, modifier));
  o.act_order = st.value("act_order", false);
  return o;
}

namespace {

class GptqModifier final : public BlockModifier {
 public:
  explicit GptqModifier(const nlohmann::json& st)
      : targets_(Targets::from_stage(st)), o_(gptq_options_from_stage(st, "gptq")) {}
  std::string name() const override { return "gptq"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    for_each_target(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const std::string& name, Linear& lin) {
                      std::vector<float> W = lin.w->dense();
                      lin.w = gptq_quantize(W.data(), lin.out(), lin.in(), ctx.stats.of(k).hessian(), o_, name).q;
                    });
  }

 private:
  Targets targets_;
  GptqOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_gptq_modifier(const nlohmann::json& stage) {
  return std::make_unique<GptqModifier>(stage);
}

}  // namespace lmp

#include "quant/lorc.h"

#include <array>

#include "core/error.h"
#include "model/model.h"
#include "quant/quant_args.h"
#include "quant/wrapped_quantizer.h"

namespace lmp {

LorcResult lorc_correct(const float* W, WeightPtr q, const LorcOptions& o, const std::string& what) {
  const int64_t m = q->rows(), n = q->cols();
  check_rank(o.rank, m, n, what + " (lorc rank)");
  std::vector<float> Q = q->dense();
  std::vector<double> E(size_t(m * n));
  for (size_t i = 0; i < E.size(); i++) E[i] = double(W[i]) - double(Q[i]);
  Svd svd = thin_svd(E, m, n, what);
  LorcResult r;
  r.sigma = svd.s;
  r.w = std::make_unique<ResidualMatrix>(std::move(q), make_lowrank(split_sqrt(svd, o.rank), o.dtype));
  return r;
}

namespace {

class LorcModifier final : public WrappedQuantizer {
 public:
  LorcModifier(const nlohmann::json& st, std::unique_ptr<BlockModifier> inner) : WrappedQuantizer("lorc", std::move(inner)) {
    o_.rank = stage_int(st, "rank", 8, 1, 1 << 20, "lorc");
    if (!st.contains("factor_dtype")) o_.dtype = FactorDtype::F16;
    else o_.dtype = factor_dtype_from_stage(st, "lorc");
  }
  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    std::array<std::vector<float>, kLinearsPerBlock> before;
    for (int k = 0; k < kLinearsPerBlock; k++) before[size_t(k)] = b.lin[size_t(k)].w->dense();
    inner_->apply(ctx);
    for (int k = 0; k < kLinearsPerBlock; k++) {
      Linear& lin = b.lin[size_t(k)];
      if (lin.w->dense() == before[size_t(k)]) continue;  // not touched by the quantizer
      lin.w = lorc_correct(before[size_t(k)].data(), std::move(lin.w), o_, linear_name(ctx.layer, LinearKind(k))).w;
    }
  }

 private:
  LorcOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_lorc_modifier(const nlohmann::json& st, std::unique_ptr<BlockModifier> inner) {
  return std::make_unique<LorcModifier>(st, std::move(inner));
}

}  // namespace lmp

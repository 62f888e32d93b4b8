#include "quant/mofq.h"

#include <cstdio>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/qint.h"
#include "quant/fp8.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

double mse(const std::vector<float>& W, const WeightMatrix& q) {
  std::vector<float> d(W.size());
  q.dequantize(d.data());
  double e = 0;
  for (size_t i = 0; i < W.size(); i++) e += double(W[i] - d[i]) * double(W[i] - d[i]);
  return e / double(W.size());
}

class MofqModifier final : public BlockModifier {
 public:
  explicit MofqModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)), grid_(grid_from_stage(st, "mofq")) {
    check(grid_.bits == 4 || grid_.bits == 8, "mofq: --bits {}: the formats are int4/e2m1 or int8/e4m3", grid_.bits);
    check(QIntMatrix::supported(grid_) && LowFloatMatrix::supported_group(grid_.group),
          "mofq: --group {} is not supported (0, 32, 64, 128, 256)", grid_.group);
  }
  std::string name() const override { return "mofq"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    int n_int = 0, n_fp = 0;
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      WeightPtr qi = QIntMatrix::quantize(lin.out(), lin.in(), W.data(), grid_);
                      LowFloatChoice f = quantize_lowfloat(W.data(), lin.out(), lin.in(),
                                                           grid_.bits == 4 ? LowFloat::E2M1 : LowFloat::E4M3,
                                                           grid_.group, true);
                      if (f.mse < mse(W, *qi)) {
                        n_fp++;
                        return std::move(f.q);
                      }
                      n_int++;
                      return qi;
                    });
    std::fprintf(stderr, "mofq: block %d: %d int%d, %d fp%d\n", ctx.layer, n_int, grid_.bits, n_fp, grid_.bits);
  }

 private:
  Targets targets_;
  QuantGrid grid_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_mofq_modifier(const nlohmann::json& stage) {
  return std::make_unique<MofqModifier>(stage);
}

}  // namespace lmp

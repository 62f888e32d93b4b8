// SignRound: learned rounding offsets (+ min/max factors) by signed gradient descent (see signround.h).
#include "quant/signround.h"

#include <algorithm>

#include "quant/quant_args.h"
#include "train/block_recon.h"
#include "train/clipquant.h"

namespace lmp {

namespace {

using train::BlockWeights;
using K = LinearKind;

class SignRoundQuantizer final : public train::BlockQuantizer {
 public:
  SignRoundQuantizer(const Block& b, int layer, const std::array<bool, kLinearsPerBlock>& tgt, const QuantGrid& grid,
                     bool minmax)
      : BlockQuantizer(b), tgt_(tgt), grid_(grid), minmax_(minmax) {
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const size_t i = size_t(k);
      O_[i] = int(b.lin[i].out()), I_[i] = int(b.lin[i].in());
      if (!tgt[i]) continue;
      const std::string nm = linear_name(layer, K(k));
      const size_t ng = size_t(O_[i] * grid.ngroups(I_[i]));
      V_[i] = add_param(nm + ".round_offset", std::vector<float>(size_t(O_[i]) * I_[i], 0.0f));
      ones_[i].assign(ng, 1.0f);
      if (minmax) {
        lo_[i] = add_param(nm + ".min_scale", std::vector<float>(ng, 1.0f));
        hi_[i] = add_param(nm + ".max_scale", std::vector<float>(ng, 1.0f));
      }
    }
  }
  std::string name() const override { return "signround"; }
  bool needs_grad(K k) const override { return tgt_[size_t(k)]; }

  void forward(BlockWeights& w) override {
    w.attn_norm = base.attn_norm;
    w.ffn_norm = base.ffn_norm;
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const size_t i = size_t(k);
      if (!tgt_[i]) {
        w.W[i] = base.W[i];
        continue;
      }
      train::clipquant_forward(w.W[i].data(), base.W[i].data(), params[size_t(V_[i])].w.data(), a_lo(i), a_hi(i),
                               O_[i], I_[i], grid_);
    }
  }

  void backward(const BlockWeights& dw) override {
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const size_t i = size_t(k);
      if (!tgt_[i]) continue;
      train::clipquant_backward((float*)nullptr, params[size_t(V_[i])].g.data(),
                                minmax_ ? params[size_t(lo_[i])].g.data() : nullptr,
                                minmax_ ? params[size_t(hi_[i])].g.data() : nullptr, dw.W[i].data(), base.W[i].data(),
                                params[size_t(V_[i])].w.data(), a_lo(i), a_hi(i), O_[i], I_[i], grid_);
    }
  }

  void project() override {
    for (auto& p : params) {
      const bool offset = p.name.size() > 13 && p.name.compare(p.name.size() - 13, 13, ".round_offset") == 0;
      for (float& v : p.w) v = offset ? std::clamp(v, -0.5f, 0.5f) : std::clamp(v, 0.0f, 1.0f);
    }
  }

  void store(Block& b) override {
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const size_t i = size_t(k);
      if (tgt_[i])
        b.lin[i].w = train::clipquant_store(base.W[i].data(), params[size_t(V_[i])].w.data(), a_lo(i), a_hi(i), O_[i],
                                            I_[i], grid_);
    }
  }

 private:
  const float* a_lo(size_t i) const { return minmax_ ? params[size_t(lo_[i])].w.data() : ones_[i].data(); }
  const float* a_hi(size_t i) const { return minmax_ ? params[size_t(hi_[i])].w.data() : ones_[i].data(); }

  std::array<bool, kLinearsPerBlock> tgt_;
  QuantGrid grid_;
  bool minmax_;
  std::array<int, kLinearsPerBlock> O_{}, I_{}, V_{}, lo_{}, hi_{};
  std::array<std::vector<float>, kLinearsPerBlock> ones_;
};

class SignRoundModifier final : public train::ReconModifier {
 public:
  explicit SignRoundModifier(const nlohmann::json& st) : ReconModifier(st, "signround") {
    minmax_ = st.value("minmax", true);
    ro_.steps = int(stage_int(st, "iters", 200, 0, 1 << 24, "signround"));
    ro_.batch = 8;
    ro_.optim.kind = "lion";  // β1 = 0: θ ← θ − lr·sign(g)
    ro_.optim.beta1 = 0;
    ro_.optim.beta2 = 0;
    ro_.optim.weight_decay = 0;
    ro_.optim.lr = 1.0 / std::max(ro_.steps, 1);
    ro_.decay = train::LrDecay::Linear;
    ro_.keep_best = true;
    train::recon_options_from_stage(st, "signround", ro_);
  }

 protected:
  std::unique_ptr<train::BlockQuantizer> make_quantizer(BlockContext& ctx) override {
    return std::make_unique<SignRoundQuantizer>(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targeted(ctx.layer),
                                                grid_, minmax_);
  }

 private:
  bool minmax_ = true;
};

}  // namespace

std::unique_ptr<BlockModifier> make_signround_modifier(const nlohmann::json& stage) {
  return std::make_unique<SignRoundModifier>(stage);
}

}  // namespace lmp

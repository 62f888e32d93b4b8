#include "quant/norm_tweak.h"

#include <cmath>
#include <cstdio>
#include <vector>

#include "core/error.h"
#include "quant/quant_args.h"
#include "quant/wrapped_quantizer.h"
#include "train/optim.h"
#include "train/tmodel.h"

namespace lmp {

double norm_tweak_loss(const float* Yq, const float* Yf, int64_t N, int64_t C, bool kl, float* dYq) {
  if (!kl) {
    double L = 0;
    for (int64_t i = 0; i < N * C; i++) {
      const double d = double(Yq[i]) - Yf[i];
      L += d * d;
      if (dYq) dYq[i] = float(2 * d / double(N * C));
    }
    return L / double(N * C);
  }
  const double eps = 1e-8;
  std::vector<double> mq(size_t(C), 0.0), mf(size_t(C), 0.0), vq(size_t(C), 0.0), vf(size_t(C), 0.0);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) mq[size_t(c)] += Yq[n * C + c], mf[size_t(c)] += Yf[n * C + c];
  for (int64_t c = 0; c < C; c++) mq[size_t(c)] /= double(N), mf[size_t(c)] /= double(N);
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++) {
      const double a = Yq[n * C + c] - mq[size_t(c)], b = Yf[n * C + c] - mf[size_t(c)];
      vq[size_t(c)] += a * a, vf[size_t(c)] += b * b;
    }
  double L = 0;
  std::vector<double> gm(static_cast<size_t>(C)), gs(static_cast<size_t>(C)), sq(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; c++) {
    const double s_q = std::sqrt(vq[size_t(c)] / double(N) + eps), s_f = std::sqrt(vf[size_t(c)] / double(N) + eps);
    const double dm = mf[size_t(c)] - mq[size_t(c)], num = s_f * s_f + dm * dm;
    L += std::log(s_q / s_f) + num / (2 * s_q * s_q) - 0.5;
    gm[size_t(c)] = -dm / (s_q * s_q) / double(C);              // ∂L/∂μ^q
    gs[size_t(c)] = (1 / s_q - num / (s_q * s_q * s_q)) / double(C);  // ∂L/∂σ^q
    sq[size_t(c)] = s_q;
  }
  if (dYq)  // ∂μ/∂y = 1/N, ∂σ/∂y = (y − μ)/(N σ)
    for (int64_t n = 0; n < N; n++)
      for (int64_t c = 0; c < C; c++)
        dYq[n * C + c] = float((gm[size_t(c)] + gs[size_t(c)] * (Yq[n * C + c] - mq[size_t(c)]) / sq[size_t(c)]) /
                               double(N));
  return L / double(C);
}

NormTweakResult norm_tweak_block(Model& m, int l, const std::vector<float>& X, const std::vector<float>& Yf, int ns,
                                 int L, const NormTweakOptions& o) {
  const int C = m.cfg.hidden;
  const size_t per = size_t(L) * C;
  check(X.size() >= size_t(ns) * per && Yf.size() >= size_t(ns) * per, "norm_tweak: {} samples need {} values",
        ns, size_t(ns) * per);
  train::TrainSetup setup;
  setup.freeze_all = true;
  train::TrainModel<float> tm(m, setup);
  const int pa = tm.attn_norm_param(l), pf = tm.ffn_norm_param(l);
  for (int p : {pa, pf}) tm.params[size_t(p)].trainable = true, tm.params[size_t(p)].g.assign(size_t(C), 0.0f);
  train::OptimConfig oc;
  oc.lr = o.lr, oc.clip = 0;
  train::Optimizer<float> opt(oc, tm.params);
  std::vector<float> Yq(size_t(o.batch) * per), dY(size_t(o.batch) * per);
  auto mean_loss = [&] {  // over batches of the tweak samples
    double sum = 0;
    int nb = 0;
    for (int s0 = 0; s0 < ns; s0 += o.batch, nb++) {
      const int B = std::min(o.batch, ns - s0);
      tm.block_only_forward(l, X.data() + size_t(s0) * per, B, L, Yq.data());
      sum += norm_tweak_loss(Yq.data(), Yf.data() + size_t(s0) * per, int64_t(B) * L, C, o.kl, nullptr);
    }
    return sum / nb;
  };
  NormTweakResult r;
  r.before = mean_loss();
  for (int it = 0; it < o.steps; it++)
    for (int s0 = 0; s0 < ns; s0 += o.batch) {
      const int B = std::min(o.batch, ns - s0);
      const float* x = X.data() + size_t(s0) * per;
      tm.zero_grad();
      tm.block_only_forward(l, x, B, L, Yq.data());
      norm_tweak_loss(Yq.data(), Yf.data() + size_t(s0) * per, int64_t(B) * L, C, o.kl, dY.data());
      tm.block_only_backward(l, x, dY.data());
      opt.step(tm.params, o.lr);
    }
  r.after = mean_loss();
  r.kept = r.after < r.before;
  if (!r.kept) {
    r.after = r.before;
    return r;
  }
  m.blocks[size_t(l)].attn_norm = tm.params[size_t(pa)].w;
  m.blocks[size_t(l)].ffn_norm = tm.params[size_t(pf)].w;
  return r;
}

namespace {

class NormTweakModifier final : public WrappedQuantizer {
 public:
  NormTweakModifier(const nlohmann::json& st, std::unique_ptr<BlockModifier> inner)
      : WrappedQuantizer("norm_tweak", std::move(inner)) {
    o_.steps = int(stage_int(st, "steps", 10, 0, 100000, "norm_tweak"));
    o_.nsamples = int(stage_int(st, "nsamples", 16, 1, 1 << 20, "norm_tweak"));
    o_.batch = int(stage_int(st, "batch", 4, 1, 1 << 16, "norm_tweak"));
    o_.lr = stage_real(st, "lr", 1e-3, 0.0, 10.0, "norm_tweak");
    const std::string loss = st.value("loss", std::string("kl"));
    check(loss == "kl" || loss == "mse", "norm_tweak: loss '{}' is not supported (kl or mse)", loss);
    o_.kl = loss == "kl";
  }
  void apply(BlockContext& ctx) override {
    const int l = ctx.layer, L = ctx.seqlen, C = ctx.model.cfg.hidden;
    const int ns = std::min<int>(o_.nsamples, int(ctx.inputs.size()));
    const size_t per = size_t(L) * C;
    std::vector<float> Yf(size_t(ns) * per), X(size_t(ns) * per);
    for (int s = 0; s < ns; s++) {
      ctx.run_block(s, Yf.data() + size_t(s) * per);  // the float block's outputs
      std::copy(ctx.inputs[size_t(s)].begin(), ctx.inputs[size_t(s)].end(), X.begin() + long(size_t(s) * per));
    }
    inner_->apply(ctx);
    if (ns == 0 || o_.steps == 0) return;
    NormTweakResult r = norm_tweak_block(ctx.model, l, X, Yf, ns, L, o_);
    std::fprintf(stderr, "norm_tweak: layer %d loss %.6g -> %.6g%s\n", l, r.before, r.after, r.kept ? "" : " (dropped)");
  }

 private:
  NormTweakOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_norm_tweak_modifier(const nlohmann::json& st, std::unique_ptr<BlockModifier> inner) {
  return std::make_unique<NormTweakModifier>(st, std::move(inner));
}

}  // namespace lmp

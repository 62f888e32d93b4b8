#include "train/block_recon.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <random>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"
#include "quant/quant_args.h"
#include "train/block.h"
#include "train/layers.h"

namespace lmp::train {

BlockWeights BlockWeights::of(const Block& b) {
  BlockWeights w;
  for (int k = 0; k < kLinearsPerBlock; k++) w.W[size_t(k)] = b.lin[size_t(k)].w->dense();
  w.attn_norm = b.attn_norm;
  w.ffn_norm = b.ffn_norm;
  return w;
}

void BlockWeights::zero() {
  for (auto& m : W) std::fill(m.begin(), m.end(), 0.0f);
  std::fill(attn_norm.begin(), attn_norm.end(), 0.0f);
  std::fill(ffn_norm.begin(), ffn_norm.end(), 0.0f);
}

int BlockQuantizer::add_param(const std::string& name, std::vector<float> init, float lr_mult) {
  Param<float> p;
  p.name = name;
  p.shape = {int64_t(init.size())};
  p.g.assign(init.size(), 0.0f);
  p.w = std::move(init);
  p.decay = false;
  p.lr_mult = lr_mult;
  params.push_back(std::move(p));
  return int(params.size()) - 1;
}

std::vector<BlockQuantizer::Range> BlockQuantizer::ranges() const {
  std::vector<Range> r;
  for (const auto& p : params)
    if (!p.w.empty())
      r.push_back({p.name, *std::min_element(p.w.begin(), p.w.end()), *std::max_element(p.w.begin(), p.w.end())});
  return r;
}

void recon_options_from_stage(const nlohmann::json& st, const char* mod, ReconOptions& o) {
  o.steps = int(stage_int(st, "steps", o.steps, 0, 1 << 24, mod));
  o.batch = int(stage_int(st, "batch", o.batch, 1, 1 << 16, mod));
  o.samples = int(stage_int(st, "recon_samples", o.samples, 0, 1 << 24, mod));
  o.optim.lr = stage_real(st, "lr", o.optim.lr, 1e-12, 10.0, mod);
  o.seed = uint64_t(stage_int(st, "seed", long(o.seed), 0, 1L << 40, mod));
}

namespace {

// The block as a function of its effective weights, on a batch of samples.
class BlockRunner {
 public:
  BlockRunner(const Model& m, int layer, int L) : m_(m), layer_(layer), L_(L) {
    cs_ = rope_table<float>(Rope(m.cfg), m.cfg.head_dim, L);
  }
  // y (B·L, C) of x (B·L, C) under weights w; keeps the activations for backward.
  void forward(const BlockWeights& w, const float* x, int B, float* y) {
    shape_ = block_shape(m_.cfg, layer_, B, L_);
    decoder_block_forward(shape_, cs_.data(), w.attn_norm.data(), w.ffn_norm.data(), ops(w, nullptr, nullptr), x,
                          acts_, y);
  }
  // dy (in) → dW of the Linears q.needs_grad asks for, dnorms when asked; dy is overwritten.
  void backward(const BlockWeights& w, const BlockQuantizer& q, const float* x, float* dy, BlockWeights& dw) {
    decoder_block_backward(shape_, cs_.data(), w.attn_norm.data(), w.ffn_norm.data(),
                           q.needs_norm_grad() ? dw.attn_norm.data() : nullptr,
                           q.needs_norm_grad() ? dw.ffn_norm.data() : nullptr, ops(w, &q, &dw), x, acts_, dy);
  }

 private:
  BlockLinearOps<float> ops(const BlockWeights& w, const BlockQuantizer* q, BlockWeights* dw) const {
    const Block* b = &m_.blocks[size_t(layer_)];
    const BlockWeights* wp = &w;
    BlockLinearOps<float> o;
    o.forward = [b, wp](LinearKind k, float* out, const float* x, int N) {
      const Linear& lin = b->at(k);
      matmul_forward(out, x, wp->W[size_t(k)].data(), lin.bias.empty() ? nullptr : lin.bias.data(), N,
                     int(lin.in()), int(lin.out()));
    };
    o.backward = [b, wp, q, dw](LinearKind k, float* dx, const float* dout, const float* x, int N) {
      const Linear& lin = b->at(k);
      float* dW = q && q->needs_grad(k) ? dw->W[size_t(k)].data() : nullptr;
      matmul_backward(dx, dW, (float*)nullptr, dout, x, wp->W[size_t(k)].data(), N, int(lin.in()), int(lin.out()));
    };
    return o;
  }

  const Model& m_;
  int layer_, L_;
  std::vector<float> cs_;
  BlockShape shape_;
  BlockActs<float> acts_;
};

void gather(const std::vector<std::vector<float>>& src, const std::vector<int>& idx, std::vector<float>& dst) {
  dst.clear();
  for (int i : idx) dst.insert(dst.end(), src[size_t(i)].begin(), src[size_t(i)].end());
}

// Mean squared error of y against t; with d non-null also d = ∂/∂y = 2 (y − t) / n.
double mse(const std::vector<float>& y, const std::vector<float>& t, std::vector<float>* d) {
  double e = 0;
  const double n = double(y.size());
  if (d) d->resize(y.size());
  for (size_t i = 0; i < y.size(); i++) {
    const double r = double(y[i]) - t[i];
    e += r * r;
    if (d) (*d)[i] = float(2 * r / n);
  }
  return e / n;
}

}  // namespace

ReconReport reconstruct_block(BlockContext& ctx, BlockQuantizer& q, const ReconOptions& o) {
  check(!ctx.inputs.empty() && ctx.run_block, "{} needs calibration data (--calib FILE)", q.name());
  Block& blk = ctx.model.blocks[size_t(ctx.layer)];
  check(!blk.attn_shortcut.w && !blk.mlp_shortcut.w,
        "{}: block {} carries SliceGPT residual shortcuts, which block reconstruction does not model", q.name(),
        ctx.layer);
  const double t0 = now_seconds();
  const int ns = o.samples > 0 ? std::min(o.samples, int(ctx.inputs.size())) : int(ctx.inputs.size());
  const int L = ctx.seqlen, B = std::min(o.batch, ns);
  const int steps = o.epochs > 0 ? o.epochs * ((ns + B - 1) / B) : o.steps;
  // Targets: the float block's outputs on the (upstream-quantized) inputs.
  std::vector<std::vector<float>> target(static_cast<size_t>(ns));
  for (int s = 0; s < ns; s++) {
    target[size_t(s)].resize(ctx.inputs[size_t(s)].size());
    ctx.run_block(s, target[size_t(s)].data());
  }
  BlockRunner run(ctx.model, ctx.layer, L);
  BlockWeights w = q.base, dw = q.base;
  std::vector<float> x, t, y, dy;
  auto eval_all = [&] {  // MSE over every used sample
    q.forward(w);
    double e = 0;
    for (int s0 = 0; s0 < ns; s0 += B) {
      std::vector<int> idx(size_t(std::min(B, ns - s0)));
      std::iota(idx.begin(), idx.end(), s0);
      gather(ctx.inputs, idx, x);
      gather(target, idx, t);
      y.resize(x.size());
      run.forward(w, x.data(), int(idx.size()), y.data());
      e += mse(y, t, nullptr) * double(idx.size());
    }
    return e / ns;
  };
  ReconReport rep;
  rep.layer = ctx.layer;
  rep.mse_init = eval_all();
  Optimizer<float> opt(o.optim, q.params);
  std::vector<int> order(static_cast<size_t>(ns));
  std::iota(order.begin(), order.end(), 0);
  size_t pos = order.size();
  int epoch = 0;
  std::vector<std::vector<float>> best;
  rep.best_loss = std::numeric_limits<double>::infinity();
  for (int step = 0; step < steps; step++) {
    std::vector<int> idx;
    while (int(idx.size()) < B) {
      if (pos == order.size()) {  // a new epoch: seeded shuffle
        std::mt19937_64 rng(o.seed * 1000003 + uint64_t(epoch++));
        std::shuffle(order.begin(), order.end(), rng);
        pos = 0;
      }
      idx.push_back(order[pos++]);
    }
    gather(ctx.inputs, idx, x);
    gather(target, idx, t);
    y.resize(x.size());
    q.forward(w);
    run.forward(w, x.data(), B, y.data());
    const double loss = mse(y, t, &dy);
    check(std::isfinite(loss), "{}: block {} loss is not finite at step {} (lower --lr?)", q.name(), ctx.layer, step);
    if (step == 0) rep.first_loss = loss;
    rep.last_loss = loss;
    if (loss < rep.best_loss) {
      rep.best_loss = loss, rep.best_step = step;
      if (o.keep_best) {
        best.resize(q.params.size());
        for (size_t i = 0; i < q.params.size(); i++) best[i] = q.params[i].w;
      }
    }
    dw.zero();
    for (auto& p : q.params) std::fill(p.g.begin(), p.g.end(), 0.0f);
    run.backward(w, q, x.data(), dy.data(), dw);
    q.backward(dw);
    const double lr = o.decay == LrDecay::Linear ? o.optim.lr * (1.0 - double(step) / steps) : o.optim.lr;
    opt.step(q.params, lr);
    q.project();
  }
  if (o.keep_best && !best.empty())  // θ of the lowest batch loss (the final step's θ is never scored)
    for (size_t i = 0; i < q.params.size(); i++) q.params[i].w = best[i];
  rep.mse_final = eval_all();
  rep.ranges = q.ranges();
  q.store(blk);
  rep.seconds = now_seconds() - t0;
  return rep;
}

ReconModifier::ReconModifier(const nlohmann::json& st, const char* name)
    : name_(name), targets_(Targets::from_stage(st)), grid_(grid_from_stage(st, name)) {
  check(!grid_.sym, "{}: only the asymmetric grid is supported (drop --sym)", name);
}

std::array<bool, kLinearsPerBlock> ReconModifier::targeted(int layer) const {
  std::array<bool, kLinearsPerBlock> t{};
  for (int k = 0; k < kLinearsPerBlock; k++) t[size_t(k)] = targets_.match(linear_name(layer, LinearKind(k)));
  return t;
}

void ReconModifier::apply(BlockContext& ctx) {
  std::unique_ptr<BlockQuantizer> q = make_quantizer(ctx);
  ReconReport r = reconstruct_block(ctx, *q, ro_);
  std::fprintf(stderr, "%s: block %d: output MSE %.4g at init -> %.4g (best batch loss at step %d), %.1f s\n",
                 name_.c_str(), r.layer, r.mse_init, r.mse_final, r.best_step, r.seconds);
  reports_.push_back(r);
}

const std::vector<ReconReport>& recon_reports(const BlockModifier& m) {
  static const std::vector<ReconReport> none;
  const auto* r = dynamic_cast<const ReconModifier*>(&m);
  return r ? r->reports() : none;
}

}  // namespace lmp::train

#include "quant/wkvquant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "model/forward.h"
#include "quant/quant_args.h"

namespace lmp {

void wkv_channel_params(const float* X, int64_t n, int64_t width, double alpha, float* shift, float* scale) {
  for (int64_t c = 0; c < width; c++) {
    if (alpha < 0 || n == 0) {
      shift[c] = 0, scale[c] = 1;
      continue;
    }
    float lo = X[c], hi = X[c];
    for (int64_t t = 1; t < n; t++) lo = std::min(lo, X[t * width + c]), hi = std::max(hi, X[t * width + c]);
    const double r = 0.5 * (double(hi) - lo);
    shift[c] = 0.5f * (lo + hi);
    scale[c] = r > 0 ? float(std::pow(r, alpha)) : 1.0f;
  }
}

namespace {

constexpr double kAlphas[] = {-1.0, 0.0, 0.25, 0.5, 0.75, 1.0};  // −1 = identity

class WkvQuantModifier final : public BlockModifier {
 public:
  explicit WkvQuantModifier(const nlohmann::json& st) {
    const char* mod = "wkvquant";
    kv_.method = KVMethod::Wkv;
    kv_.bits = int(stage_int(st, "bits", 4, 2, 8, mod));
    check(kv_.bits == 2 || kv_.bits == 4 || kv_.bits == 8, "{}: --bits {}: KV bits are 2, 4 or 8", mod, kv_.bits);
    const long g = stage_int(st, "group", 128, 0, 1 << 20, mod);
    kv_.value_group = g == 0 ? 1 << 20 : int(g);
    cross_ = int(stage_int(st, "cross_blocks", 1, 0, 64, mod));
    samples_ = int(stage_int(st, "samples", 8, 1, 1 << 20, mod));
  }
  std::string name() const override { return "wkvquant"; }
  StatsRequest stats_request() const override { return {false, false}; }

  void apply(BlockContext& ctx) override {
    Model& m = ctx.model;
    const int l = ctx.layer, last = std::min(m.cfg.n_layers - 1, l + cross_);
    const int ns = int(std::min<size_t>(ctx.inputs.size(), size_t(samples_)));
    const int L = ctx.seqlen, C = m.cfg.hidden;
    Block& b = m.blocks[size_t(l)];
    b.kv_smooth.clear();
    const int64_t W = b.at(LinearKind::K).out();
    std::vector<float> K, V;
    capture_kv(ctx, ns, K, V);
    // Reference: blocks l..last with an f32 cache, prefilled at once.
    std::vector<float> ref(size_t(ns) * L * C);
    for (int s = 0; s < ns; s++) run_blocks(m, l, last, ctx.inputs[size_t(s)], L, {}, ref.data() + size_t(s) * L * C);
    auto loss = [&] {
      std::vector<float> out(size_t(L) * C);
      double e = 0;
      for (int s = 0; s < ns; s++) {
        run_blocks(m, l, last, ctx.inputs[size_t(s)], L, kv_, out.data());
        for (size_t i = 0; i < out.size(); i++) e += std::fabs(double(out[i]) - ref[size_t(s) * L * C + i]);
      }
      return e / double(size_t(ns) * L * C);
    };
    // Coordinate search: α of K with V identity, then α of V with the chosen K.
    std::vector<float> sm(size_t(4 * W));
    double best_alpha[2] = {-1, -1}, base = 0, best = INFINITY;
    for (int kind = 0; kind < 2; kind++) {
      const std::vector<float>& X = kind == 0 ? K : V;
      for (double a : kAlphas) {
        wkv_channel_params(X.data(), int64_t(X.size()) / W, W, a, &sm[size_t(2 * kind * W)],
                           &sm[size_t((2 * kind + 1) * W)]);
        if (kind == 0) wkv_channel_params(nullptr, 0, W, -1, &sm[size_t(2 * W)], &sm[size_t(3 * W)]);
        b.kv_smooth = sm;
        const double e = loss();
        if (kind == 0 && a < 0) base = e;
        if (e < best) best = e, best_alpha[kind] = a;
      }
      wkv_channel_params(X.data(), int64_t(X.size()) / W, W, best_alpha[kind], &sm[size_t(2 * kind * W)],
                         &sm[size_t((2 * kind + 1) * W)]);
    }
    b.kv_smooth = sm;
    auto name = [](double a) { return a < 0 ? std::string("identity") : fmt::format("{:.2f}", a); };
    std::fprintf(stderr, "wkvquant: block %d (loss through block %d) alpha K %s, V %s: MAE %.3g (per-token only %.3g)\n",
                 l, last, name(best_alpha[0]).c_str(), name(best_alpha[1]).c_str(), best, base);
  }

 private:
  // K (post-RoPE) and V of block ctx.layer on the first ns samples: (ns · L, W) each.
  void capture_kv(BlockContext& ctx, int ns, std::vector<float>& K, std::vector<float>& V) const {
    const Block& b = ctx.model.blocks[size_t(ctx.layer)];
    const Linear &lk = b.at(LinearKind::K), &lv = b.at(LinearKind::V);
    const int64_t W = lk.out(), L = ctx.seqlen, hs = ctx.model.cfg.head_dim;
    const Rope rope(ctx.model.cfg);
    K.assign(size_t(ns * L * W), 0), V.assign(size_t(ns * L * W), 0);
    std::vector<float> out(ctx.inputs[0].size());
    for (int s = 0; s < ns; s++)
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k != LinearKind::K) return;
        check(n == L, "wkvquant: block input of {} tokens, expected {}", n, L);
        float* ks = &K[size_t(s * L * W)];
        lk.forward(X, n, ks);
        lv.forward(X, n, &V[size_t(s * L * W)]);
        for (int64_t t = 0; t < n; t++) rope.apply(ks + t * W, int(W / hs), int(t));
      });
  }
  // Blocks l..last on one sample's input x (L, C) → out; kv.quantized(): token by token (decoding).
  static void run_blocks(const Model& m, int l, int last, const std::vector<float>& x, int L, const KVQuantOptions& kv,
                         float* out) {
    Forward fw(m);
    KVCache cache(m.cfg, L, kv);
    const int C = m.cfg.hidden;
    std::copy(x.begin(), x.begin() + size_t(L) * C, out);
    const int step = kv.quantized() ? 1 : L;
    for (int t = 0; t < L; t += step) {
      for (int i = l; i <= last; i++) fw.block(i, out + size_t(t) * C, step, cache);
      cache.advance(step);
    }
  }

  KVQuantOptions kv_;
  int cross_ = 1, samples_ = 8;
};

}  // namespace

std::unique_ptr<BlockModifier> make_wkvquant_modifier(const nlohmann::json& stage) {
  return std::make_unique<WkvQuantModifier>(stage);
}

}  // namespace lmp

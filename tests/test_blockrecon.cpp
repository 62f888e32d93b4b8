// Block-wise reconstruction (train/block_recon.h) and its two methods, OmniQuant and SignRound:
//  - the learnable-range quantizer's STE gradients against central differences of the STE surrogate (every
//    rounding frozen at the evaluation point, written out independently here), in double;
//  - the stored packed matrix equals the optimised forward; zero SignRound iterations store exactly RTN;
//  - LET: its scale gradients against finite differences, and folding leaves the float block output unchanged;
//  - the defining checks: after optimisation the block output error on held-out samples is below RTN's at the
//    same bits (OmniQuant at 3 bits; SignRound at 3 and 4 bits), γ, β ∈ (0, 1], V ∈ [−0.5, 0.5];
//  - the CLI shortcuts and their argument errors.
#include <cmath>
#include <random>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "compress/recipe.h"
#include "core/half.h"
#include "kernels/dense.h"
#include "kernels/qint.h"
#include "model/forward.h"
#include "quant/omniquant.h"
#include "train/block_recon.h"
#include "train/clipquant.h"
#include "testutil.h"

using namespace lmp;

namespace {

std::vector<double> normal(size_t n, uint32_t seed, double scale) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}
std::vector<double> uniform(size_t n, uint32_t seed, double lo, double hi) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> d(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// The STE surrogate of clipquant_forward around θ0: every rounding replaced by "identity + the offset it had at
// θ0" (round(x) → x + (round(x0) − x0), f16 rounding of s likewise), clamp decisions frozen. Its exact gradient
// is what the straight-through estimator claims; written from the header's definition, not from the code.
struct Surrogate {
  const std::vector<double>& W;
  int O, I;
  QuantGrid grid;
  // frozen at θ0, per group / per weight
  std::vector<double> cs, cz, cr;
  std::vector<int> zclamped_to, clip_to;  // −1 = not clamped; else the clamped value
  std::vector<int> imn, imx;

  double maxq() const { return grid.maxq(); }
  void range(const double* w, int n, int& a, int& b) const {
    a = -1, b = -1;
    double mn = 0, mx = 0;
    for (int i = 0; i < n; i++) {
      if (w[i] < mn) mn = w[i], a = i;
      if (w[i] > mx) mx = w[i], b = i;
    }
  }
  // Evaluates Ŵ; with freeze, records the offsets at this θ (θ0).
  std::vector<double> eval(const std::vector<double>& Wv, const std::vector<double>* V, const std::vector<double>& alo,
                           const std::vector<double>& ahi, bool freeze) {
    const int gs = int(grid.group_size(I)), G = int(grid.ngroups(I));
    std::vector<double> out(Wv.size());
    if (freeze) {
      cs.assign(size_t(O * G), 0), cz = cs, zclamped_to.assign(cs.size(), -1), imn.assign(cs.size(), -1),
          imx = imn, cr.assign(Wv.size(), 0), clip_to.assign(Wv.size(), -1);
    }
    for (int o = 0; o < O; o++)
      for (int g = 0; g < G; g++) {
        const size_t gi = size_t(o * G + g), b0 = size_t(o) * I + size_t(g * gs);
        const int n = std::min(gs, I - g * gs);
        if (freeze) range(&Wv[b0], n, imn[gi], imx[gi]);
        const double mn = imn[gi] < 0 ? 0 : Wv[b0 + size_t(imn[gi])], mx = imx[gi] < 0 ? 0 : Wv[b0 + size_t(imx[gi])];
        const double lo = alo[gi] * mn, hi = ahi[gi] * mx, se = (hi - lo) / maxq();
        if (freeze) cs[gi] = double(f16_ceil(float(se))) - se;
        const double s = se + cs[gi];
        if (freeze) {
          const double zr = std::nearbyint(-lo / s);
          cz[gi] = zr - (-lo / s);
          if (zr < 0 || zr > maxq()) zclamped_to[gi] = zr < 0 ? 0 : int(maxq());
        }
        const double z = zclamped_to[gi] >= 0 ? zclamped_to[gi] : -lo / s + cz[gi];
        for (int i = 0; i < n; i++) {
          const size_t k = b0 + size_t(i);
          const double r = Wv[k] / s + (V ? (*V)[k] : 0.0);
          if (freeze) {
            cr[k] = std::nearbyint(r) - r;
            const double q = std::nearbyint(r) + std::nearbyint(z);
            if (q < 0 || q > maxq()) clip_to[k] = q < 0 ? 0 : int(maxq());
          }
          out[k] = clip_to[k] >= 0 ? (clip_to[k] - z) * s : (r + cr[k]) * s;
        }
      }
    return out;
  }
};

double dotp(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); i++) s += a[i] * b[i];
  return s;
}

void expect_close(double an, double nu, const std::string& what) {
  EXPECT_NEAR(an, nu, 1e-6 + 1e-5 * std::fabs(nu)) << what;
}

}  // namespace

// LWC / SignRound gradients: analytic STE gradients of L = Σ G ⊙ Ŵ against central differences of the surrogate.
TEST(ClipQuant, SteGradientsMatchFiniteDifferences) {
  for (bool offsets : {false, true}) {
    const int O = 3, I = 80;  // groups of 32: two full and one ragged (16)
    QuantGrid grid{3, false, 32};
    const int G = int(grid.ngroups(I));
    std::vector<double> W = normal(size_t(O * I), 1, 0.3), V = uniform(W.size(), 2, -0.45, 0.45);
    std::vector<double> alo = uniform(size_t(O * G), 3, 0.6, 1.0), ahi = uniform(size_t(O * G), 4, 0.6, 1.0);
    const std::vector<double> Gr = normal(W.size(), 5, 1.0);
    const std::vector<double>* Vp = offsets ? &V : nullptr;
    std::vector<double> What(W.size());
    train::clipquant_forward(What.data(), W.data(), offsets ? V.data() : nullptr, alo.data(), ahi.data(), O, I, grid);
    Surrogate sur{W, O, I, grid, {}, {}, {}, {}, {}, {}, {}};
    const std::vector<double> W0 = sur.eval(W, Vp, alo, ahi, true);
    for (size_t k = 0; k < W.size(); k++) ASSERT_NEAR(W0[k], What[k], 1e-12) << "surrogate forward == forward at θ0";
    std::vector<double> dW(W.size(), 0), dV(W.size(), 0), dlo(alo.size(), 0), dhi(ahi.size(), 0);
    train::clipquant_backward(dW.data(), offsets ? dV.data() : nullptr, dlo.data(), dhi.data(), Gr.data(), W.data(),
                              offsets ? V.data() : nullptr, alo.data(), ahi.data(), O, I, grid);
    auto f = [&] { return dotp(Gr, sur.eval(W, Vp, alo, ahi, false)); };
    auto check = [&](std::vector<double>& x, const std::vector<double>& an, const char* name) {
      for (size_t i = 0; i < x.size(); i++) {
        const double h = 1e-7, x0 = x[i];
        x[i] = x0 + h;
        const double fp = f();
        x[i] = x0 - h;
        const double fm = f();
        x[i] = x0;
        expect_close(an[i], (fp - fm) / (2 * h), fmt::format("{}[{}] offsets={}", name, i, offsets));
      }
    };
    check(alo, dlo, "d a_lo");
    check(ahi, dhi, "d a_hi");
    check(W, dW, "dW");
    if (offsets) check(V, dV, "dV");
    double nz = 0;
    for (double d : dlo) nz += std::fabs(d);
    EXPECT_GT(nz, 0) << "the range gradient is not trivially zero";
  }
}

// The packed matrix holds exactly the forward's Ŵ; with V = 0, a = 1 it is RTN's min–max grid.
TEST(ClipQuant, StoredMatrixEqualsForward) {
  const int O = 5, I = 96;
  for (int bits : {2, 3, 4}) {
    QuantGrid grid{bits, false, 32};
    const int G = int(grid.ngroups(I));
    std::vector<float> W(size_t(O * I)), V(W.size()), alo(size_t(O * G)), ahi(alo.size()), What(W.size());
    auto w = normal(W.size(), 7, 0.2), v = uniform(W.size(), 8, -0.5, 0.5), a = uniform(alo.size(), 9, 0.5, 1),
         b = uniform(alo.size(), 10, 0.5, 1);
    std::copy(w.begin(), w.end(), W.begin()), std::copy(v.begin(), v.end(), V.begin());
    std::copy(a.begin(), a.end(), alo.begin()), std::copy(b.begin(), b.end(), ahi.begin());
    train::clipquant_forward(What.data(), W.data(), V.data(), alo.data(), ahi.data(), O, I, grid);
    auto Q = train::clipquant_store(W.data(), V.data(), alo.data(), ahi.data(), O, I, grid);
    EXPECT_EQ(Q->format(), QIntMatrix::format_name(grid));
    EXPECT_EQ(Q->dense(), What) << bits << " bits";
    std::fill(alo.begin(), alo.end(), 1.0f), std::fill(ahi.begin(), ahi.end(), 1.0f);
    auto R = train::clipquant_store(W.data(), nullptr, alo.data(), ahi.data(), O, I, grid);
    EXPECT_EQ(R->dense(), QIntMatrix::quantize(O, I, W.data(), grid)->dense()) << "a = 1, V = 0 is RTN";
  }
}

namespace {

struct Tiny {
  std::string dir;
  ModelConfig cfg;
};
Tiny tiny_model(const std::string& tag) {
  Tiny t;
  t.dir = test::temp_dir(tag);
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 2, s.ffn = 96, s.vocab = 64, s.layers = 2;
  t.cfg = test::write_tiny_model(t.dir, s);
  return t;
}

// Block 0 output of m on each sample (inference Forward), concatenated.
std::vector<float> block0(const Model& m, const Samples& samples) {
  Forward fw(m);
  const int L = int(samples[0].size()), C = m.cfg.hidden;
  std::vector<float> all, x(size_t(L) * C);
  for (const auto& s : samples) {
    fw.embed(s.data(), L, x.data());
    KVCache cache(m.cfg, L);
    fw.block(0, x.data(), L, cache);
    all.insert(all.end(), x.begin(), x.end());
  }
  return all;
}

double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); i++) e += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return e / double(a.size());
}

std::unique_ptr<Model> compress(const std::string& dir, const nlohmann::json& stage, const Samples& calib,
                                std::vector<train::ReconReport>* reps = nullptr) {
  auto m = load_model(dir);
  auto mod = make_modifier(stage);
  PipelineOptions po;
  po.progress = false;
  if (mod->needs_calibration())
    run_sequential(*m, calib, {mod.get()}, po);
  else
    run_data_free(*m, {mod.get()}, po);
  if (reps) *reps = train::recon_reports(*mod);
  return m;
}

// Exact (dequantize + sgemm) int matmuls while alive: the int8-activation kernels would add their own error.
struct ExactQint {
  int64_t keep = qint_sgemm_min_n();
  ExactQint() { qint_set_sgemm_min_n(1); }
  ~ExactQint() { qint_set_sgemm_min_n(keep); }
};

}  // namespace

// LET's scale gradients (a smooth map: no rounding) against central differences, on a GQA block.
TEST(Let, ScaleGradientsMatchFiniteDifferences) {
  Tiny t = tiny_model("let-grad");
  auto m = load_model(t.dir);
  const train::BlockWeights in = train::BlockWeights::of(m->blocks[0]);
  LetScales s;
  auto u = [](size_t n, uint32_t seed) {
    auto v = uniform(n, seed, 0.5, 2.0);
    return std::vector<float>(v.begin(), v.end());
  };
  s.attn = u(64, 1), s.mlp = u(64, 2), s.vo = u(size_t(t.cfg.kv_heads(0) * t.cfg.head_dim), 3);
  train::BlockWeights G = in, out;
  uint32_t seed = 10;
  for (auto& W : G.W) {
    auto r = normal(W.size(), seed++, 1.0);
    std::copy(r.begin(), r.end(), W.begin());
  }
  for (auto* n : {&G.attn_norm, &G.ffn_norm}) {
    auto r = normal(n->size(), seed++, 1.0);
    std::copy(r.begin(), r.end(), n->begin());
  }
  auto loss = [&] {
    let_transform(in, s, t.cfg, 0, out);
    double L = 0;
    for (int k = 0; k < kLinearsPerBlock; k++)
      for (size_t i = 0; i < out.W[size_t(k)].size(); i++) L += double(G.W[size_t(k)][i]) * out.W[size_t(k)][i];
    for (size_t j = 0; j < out.attn_norm.size(); j++)
      L += double(G.attn_norm[j]) * out.attn_norm[j] + double(G.ffn_norm[j]) * out.ffn_norm[j];
    return L;
  };
  LetScales ds = s;
  for (auto* v : {&ds.attn, &ds.mlp, &ds.vo}) std::fill(v->begin(), v->end(), 0.0f);
  let_backward(in, s, t.cfg, 0, G, ds);
  for (auto [x, d, name] : {std::tuple{&s.attn, &ds.attn, "attn"}, {&s.mlp, &ds.mlp, "mlp"}, {&s.vo, &ds.vo, "vo"}})
    for (size_t j = 0; j < x->size(); j++) {
      const float x0 = (*x)[j], h = 1e-2f;
      (*x)[j] = x0 + h;
      const double fp = loss();
      (*x)[j] = x0 - h;
      const double fm = loss();
      (*x)[j] = x0;
      const double nu = (fp - fm) / (2 * double(h));
      // float map, h = 1e-2: O(h²) truncation of the 1/s terms and float rounding
      EXPECT_NEAR((*d)[j], nu, 2e-3 * (1 + std::fabs(nu))) << name << "[" << j << "]";
    }
}

// Folding LET scales (norm ⊘ s, W ⊙ s; v rows ⊘ s, o columns ⊙ s under GQA) leaves the float block's output as
// it was, through the inference Forward.
TEST(Let, FoldingKeepsFloatBlockOutput) {
  Tiny t = tiny_model("let-fold");
  auto ref = load_model(t.dir), m = load_model(t.dir);
  LetScales s;
  auto u = [](size_t n, uint32_t seed) {
    auto v = uniform(n, seed, 0.3, 3.0);
    return std::vector<float>(v.begin(), v.end());
  };
  s.attn = u(64, 4), s.mlp = u(64, 5), s.vo = u(size_t(t.cfg.kv_heads(0) * t.cfg.head_dim), 6);
  train::BlockWeights out;
  let_transform(train::BlockWeights::of(m->blocks[0]), s, t.cfg, 0, out);
  Block& b = m->blocks[0];
  b.attn_norm = out.attn_norm, b.ffn_norm = out.ffn_norm;
  for (int k = 0; k < kLinearsPerBlock; k++) {
    Linear& lin = b.lin[size_t(k)];
    if (k == int(LinearKind::Down)) {  // the paper's LET leaves the second FFN Linear alone
      EXPECT_EQ(out.W[size_t(k)], lin.w->dense());
      continue;
    }
    EXPECT_NE(out.W[size_t(k)], lin.w->dense()) << kLinearNames[size_t(k)] << " changed by the transform";
    lin.w = std::make_unique<DenseF32>(lin.out(), lin.in(), out.W[size_t(k)]);
  }
  const Samples xs = test::random_tokens(4, 32, 64, 11);
  const auto y0 = block0(*ref, xs), y1 = block0(*m, xs);
  EXPECT_LT(test::max_rel_diff(y1.data(), y0.data(), y0.size()), 1e-5);
}

// The defining check for OmniQuant: LWC (and LWC + LET) lowers block 0's output error on held-out samples
// below RTN's at 3 bits, group 32; γ, β stay in (0, 1]; the stored Linears are packed int3.
TEST(OmniQuant, BlockOutputErrorBelowRtn) {
  Tiny t = tiny_model("omni-rtn");
  const Samples calib = test::random_tokens(16, 32, 64, 1), held = test::random_tokens(8, 32, 64, 2);
  ExactQint exact;
  auto ref = load_model(t.dir);
  const auto y = block0(*ref, held);
  const double e_rtn = mse(block0(*compress(t.dir, {{"modifier", "rtn"}, {"bits", 3}, {"group", 32}}, calib), held), y);
  for (bool let : {false, true}) {
    std::vector<train::ReconReport> reps;
    nlohmann::json st = {{"modifier", "omniquant"}, {"bits", 3}, {"group", 32}, {"epochs", 8}, {"let", let}};
    auto q = compress(t.dir, st, calib, &reps);
    const double e = mse(block0(*q, held), y);
    std::printf("omniquant let=%d: held-out block-0 MSE %.4g, RTN %.4g\n", int(let), e, e_rtn);
    EXPECT_LT(e, 0.9 * e_rtn) << "let=" << let << ": OmniQuant " << e << " vs RTN " << e_rtn;
    ASSERT_EQ(reps.size(), 2u);
    for (const auto& r : reps) {
      EXPECT_LT(r.mse_final, r.mse_init) << "block " << r.layer;
      for (const auto& p : r.ranges)
        if (p.name.find(".lwc_") != std::string::npos) {
          EXPECT_GT(p.lo, 0.0) << p.name;
          EXPECT_LE(p.hi, 1.0) << p.name;
        }
    }
    for (const Linear& lin : q->blocks[0].lin) EXPECT_EQ(lin.w->format(), "int3_g32_asym");
  }
}

// The defining check for SignRound: learned rounding lowers block 0's output error below RTN's at 3 and 4 bits;
// V stays within [−0.5, 0.5]. With 0 iterations it stores exactly RTN, and the reconstruction's own block forward
// measures the same error as the inference Forward does.
TEST(SignRound, RoundingBeatsRtnAt3And4Bits) {
  Tiny t = tiny_model("signround-rtn");
  const Samples calib = test::random_tokens(16, 32, 64, 1), held = test::random_tokens(8, 32, 64, 2);
  ExactQint exact;
  auto ref = load_model(t.dir);
  const auto y = block0(*ref, held), y_cal = block0(*ref, calib);
  for (int bits : {3, 4}) {
    auto rtn = compress(t.dir, {{"modifier", "rtn"}, {"bits", bits}, {"group", 32}}, calib);
    const double e_rtn = mse(block0(*rtn, held), y);
    std::vector<train::ReconReport> reps;
    auto q0 = compress(t.dir, {{"modifier", "signround"}, {"bits", bits}, {"group", 32}, {"iters", 0}}, calib, &reps);
    for (int k = 0; k < kLinearsPerBlock; k++)
      EXPECT_EQ(q0->blocks[0].lin[size_t(k)].w->dense(), rtn->blocks[0].lin[size_t(k)].w->dense());
    EXPECT_NEAR(reps[0].mse_init, mse(block0(*rtn, calib), y_cal), 1e-4 * reps[0].mse_init);
    for (bool minmax : {false, true}) {
      nlohmann::json st = {{"modifier", "signround"}, {"bits", bits}, {"group", 32}, {"iters", 60}, {"minmax", minmax}};
      auto q = compress(t.dir, st, calib, &reps);
      const double e = mse(block0(*q, held), y);
      std::printf("signround %d bits minmax=%d: held-out block-0 MSE %.4g, RTN %.4g\n", bits, int(minmax), e, e_rtn);
      EXPECT_LT(e, 0.9 * e_rtn) << bits << " bits, minmax=" << minmax << ": SignRound " << e << " vs RTN " << e_rtn;
      for (const auto& r : reps)
        for (const auto& p : r.ranges) {
          const bool v = p.name.find(".round_offset") != std::string::npos;
          EXPECT_GE(p.lo, v ? -0.5 : 0.0) << p.name;
          EXPECT_LE(p.hi, v ? 0.5 : 1.0) << p.name;
          if (v) {
            EXPECT_GT(p.hi - p.lo, 0.0) << p.name << " moved";
          }
        }
      for (const Linear& lin : q->blocks[1].lin) EXPECT_EQ(lin.w->format(), QIntMatrix::format_name({bits, false, 32}));
    }
  }
}

// The CLI shortcuts on the real stories260K (a few samples and steps: this checks wiring, not quality).
TEST(BlockReconCli, QuantizeShortcutsAndErrors) {
  const std::string model = LMP_REQUIRE_SHARED("models/stories260K");
  const std::string calib = LMP_REQUIRE_SHARED("data/tinystories/calib.txt");
  const std::string common =
      " --model " + model + " --bits 4 --group 32 --calib " + calib + " --calib-format docs --nsamples 4 --seqlen 64";
  std::string out, err;
  const std::string o1 = test::temp_dir("recon-cli-omni") + "/m", o2 = test::temp_dir("recon-cli-sr") + "/m";
  ASSERT_EQ(test::run_lmpress("quantize --method omniquant --epochs 1 --lr 0.005" + common + " -o " + o1, &out, &err), 0)
      << err;
  ASSERT_EQ(test::run_lmpress("quantize --method signround --iters 3" + common + " -o " + o2, &out, &err), 0) << err;
  for (const auto& d : {o1, o2}) {
    auto m = load_model(d);
    for (const Block& b : m->blocks)
      for (const Linear& lin : b.lin) EXPECT_EQ(lin.w->format(), "int4_g32_asym") << d;
    EXPECT_EQ(m->recipe["stages"][0]["bits"], 4);
  }
  EXPECT_EQ(test::run_lmpress("quantize --method signround --sym" + common + " -o " + o2 + "x", &out, &err), 2);
  EXPECT_NE(err.find("asymmetric"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("quantize --method omniquant --epochs -1" + common + " -o " + o1 + "x", &out, &err), 2);
  EXPECT_NE(err.find("epochs"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("quantize --method signround --bits 4 --group 32 --model " + model + " -o " + o2 + "y",
                              &out, &err), 2);
  EXPECT_NE(err.find("calibration"), std::string::npos) << err;
}

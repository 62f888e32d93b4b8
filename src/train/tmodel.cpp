#include "train/tmodel.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/dense.h"
#include "train/fakequant.h"
#include "train/l4q.h"
#include "train/layers.h"
#include "train/lora.h"

namespace lmp::train {

template <class T>
static std::vector<T> to_t(const std::vector<float>& v) {
  return std::vector<T>(v.begin(), v.end());
}
template <class T>
static std::vector<float> to_f(const std::vector<T>& v) {
  return std::vector<float>(v.begin(), v.end());
}

// ---------------------------------------------------------------------------------------------------
// Building from a Model

template <class T>
int TrainModel<T>::add_param(const std::string& name, std::vector<int64_t> shape, std::vector<T> w, bool trainable,
                             bool decay) {
  Param<T> p;
  p.name = name;
  p.shape = std::move(shape);
  p.w = std::move(w);
  p.trainable = trainable;
  p.decay = decay;
  if (trainable) p.g.assign(p.w.size(), T(0));
  params.push_back(std::move(p));
  return int(params.size()) - 1;
}

template <class T>
TrainModel<T>::TrainModel(const Model& m, const TrainSetup& s) : cfg(m.cfg), setup(s), rope_(m.cfg) {
  check(s.mode != Mode::Lora || s.rank > 0, "LoRA rank must be positive (got --rank {})", s.rank);
  check(s.mode != Mode::Lora || s.alpha > 0, "LoRA alpha must be positive (got {})", s.alpha);
  std::vector<int> keep;
  for (int l = 0; l < m.cfg.n_layers; l++)
    if (std::find(s.drop_layers.begin(), s.drop_layers.end(), l) == s.drop_layers.end()) keep.push_back(l);
  check(!keep.empty(), "dropping layers would leave no decoder block");
  cfg.n_layers = int(keep.size());
  auto remap = [&](std::vector<int>& v) {
    if (v.empty()) return;
    std::vector<int> r;
    for (int l : keep) r.push_back(v[size_t(l)]);
    v = r;
  };
  remap(cfg.layer_heads);
  remap(cfg.layer_kv_heads);
  remap(cfg.layer_intermediate);
  const bool base_tr = !s.freeze_all && (s.mode == Mode::Full || s.mode == Mode::Qat);
  // LoRA and PEQA keep everything but their adapters / scales frozen.
  const bool embed_tr = base_tr && s.train_embed, norm_tr = base_tr && s.train_norms;
  const int64_t C = cfg.hidden, V = cfg.vocab;
  m.require_dense_embed("training");
  wte_ = add_param("model.embed_tokens.weight", {V, C}, to_t<T>(m.embed), embed_tr, false);
  Targets targets(s.targets, {});
  lins_.resize(size_t(cfg.n_layers) * kLinearsPerBlock);
  for (int l = 0; l < cfg.n_layers; l++) {
    const Block& b = m.blocks[size_t(keep[size_t(l)])];
    std::string p = fmt::format("model.layers.{}.", l);
    attn_norm_.push_back(add_param(p + "input_layernorm.weight", {C}, to_t<T>(b.attn_norm), norm_tr, false));
    ffn_norm_.push_back(add_param(p + "post_attention_layernorm.weight", {C}, to_t<T>(b.ffn_norm), norm_tr, false));
    for (int k = 0; k < kLinearsPerBlock; k++) {
      std::string name = linear_name(l, LinearKind(k));
      build_linear(linear(l, k), b.lin[size_t(k)], name, base_tr, targets.match(name));
    }
  }
  fnorm_ = add_param("model.norm.weight", {C}, to_t<T>(m.final_norm), norm_tr, false);
  if (!cfg.tie_embeddings) head_ = add_param("lm_head.weight", {V, C}, to_t<T>(m.lm_head.w->dense()), base_tr, true);
}

template <class T>
void TrainModel<T>::build_linear(TLinear<T>& L, const Linear& src, const std::string& name, bool base_tr,
                                 bool target) {
  const TrainSetup& s = setup;
  L.name = name;
  L.O = int(src.out());
  L.I = int(src.in());
  const int O = L.O, I = L.I;
  std::vector<float> Wf = src.w->dense();
  const auto* qsrc = dynamic_cast<const QIntMatrix*>(src.w.get());
  if (!src.bias.empty()) L.bias = add_param(name + ".bias", {O}, to_t<T>(src.bias), base_tr, false);
  if (target && s.mode == Mode::Lora) {
    const int r = s.rank;
    L.rank = r;
    L.lora_scale = double(s.alpha) / r;
    std::vector<float> A(size_t(r) * I), B(size_t(O) * r, 0.0f);
    std::mt19937_64 rng(s.seed * 7919 + std::hash<std::string>{}(name));
    std::uniform_real_distribution<float> U(-1.0f / std::sqrt(float(I)), 1.0f / std::sqrt(float(I)));
    for (auto& a : A) a = U(rng);
    if (s.loftq_iters > 0) {
      LoftQResult lq = loftq_init(Wf.data(), O, I, s.base_grid, r, L.lora_scale, s.loftq_iters);
      L.qbase = std::move(lq.Q);
      A = std::move(lq.A);
      B = std::move(lq.B);
    } else if (s.qlora) {
      L.qbase = QIntMatrix::quantize(O, I, Wf.data(), s.base_grid);
    } else {
      L.W = add_param(name + ".weight", {O, I}, to_t<T>(Wf), false, true);
    }
    L.A = add_param(name + ".lora_A", {r, I}, to_t<T>(A), !s.freeze_all, false);
    L.B = add_param(name + ".lora_B", {O, r}, to_t<T>(B), !s.freeze_all, false);
    if (s.l4q) {  // step sizes initialised on W (B = 0 at the start, so the merge is W)
      check(L.W >= 0, "L4Q quantizes the merge of a float base: not with --qlora / --loftq");
      L.l4q = true;
      L.grid = s.grid;
      const int64_t G = L.grid.ngroups(I);
      std::vector<float> sc(size_t(O * G));
      L.zero.resize(size_t(O * G));
      init_group_params(Wf.data(), O, I, L.grid, s.asym_clip, sc.data(), L.zero.data());
      L.scale = add_param(name + ".scales", {O, G}, to_t<T>(sc), !s.freeze_all, false);
      params[size_t(L.scale)].positive = true;
    }
  } else if (target && (s.mode == Mode::Qat || s.mode == Mode::Peqa)) {
    L.grid = s.grid;
    std::vector<float> sc;
    if (qsrc && s.mode == Mode::Peqa) {  // PEQA on an already quantized layer: its codes and grid as they are
      L.grid = qsrc->grid();
      const int64_t G = L.grid.ngroups(I);
      sc.resize(size_t(O * G));
      L.zero.resize(size_t(O * G));
      L.codes.resize(size_t(O) * I);
      for (int o = 0; o < O; o++) {
        qsrc->unpack_row(o, L.codes.data() + size_t(o) * I);
        for (int64_t g = 0; g < G; g++) {
          GroupParams p = qsrc->params(o, g);
          sc[size_t(o * G + g)] = p.scale;
          L.zero[size_t(o * G + g)] = p.zero;
        }
      }
    } else {
      const int64_t G = L.grid.ngroups(I);
      sc.resize(size_t(O * G));
      L.zero.resize(size_t(O * G));
      init_group_params(Wf.data(), O, I, L.grid, s.asym_clip, sc.data(), L.zero.data());
      if (s.mode == Mode::Peqa) {
        L.codes.resize(size_t(O) * I);
        codes_for(Wf.data(), O, I, L.grid, sc.data(), L.zero.data(), L.codes.data());
      }
    }
    const int64_t G = L.grid.ngroups(I);
    if (s.mode == Mode::Qat) {
      L.fq = true;
      L.W = add_param(name + ".weight", {O, I}, to_t<T>(Wf), base_tr, true);
    } else {
      L.peqa = true;
    }
    L.scale = add_param(name + ".scales", {O, G}, to_t<T>(sc), !s.freeze_all, false);
    params[size_t(L.scale)].positive = true;
  } else {
    L.W = add_param(name + ".weight", {O, I}, to_t<T>(Wf), base_tr, true);
  }
}

template <class T>
int64_t TrainModel<T>::n_trainable() const {
  int64_t n = 0;
  for (const auto& p : params)
    if (p.trainable) n += int64_t(p.size());
  return n;
}

template <class T>
void TrainModel<T>::zero_grad() {
  for (auto& p : params) std::fill(p.g.begin(), p.g.end(), T(0));
}

template <class T>
void TrainModel<T>::clamp_positive() {
  for (auto& p : params)
    if (p.positive)
      for (auto& v : p.w) v = std::max(v, T(1e-6));
}

// ---------------------------------------------------------------------------------------------------
// Linear forward / backward

// The weight the Linear computes with (O, I): W, fq(W; s, z), (q − z)·s or the dequantized QLoRA base.
template <class T>
const T* TrainModel<T>::weight(const TLinear<T>& L, std::vector<T>& scratch) const {
  const size_t n = size_t(L.O) * L.I;
  if (L.W >= 0 && !L.fq && !L.l4q) return params[size_t(L.W)].w.data();
  scratch.resize(n);
  if (L.l4q) {
    std::vector<T> Wm = l4q_merged(L);
    fakequant_forward(scratch.data(), Wm.data(), params[size_t(L.scale)].w.data(), L.zero.data(), L.O, L.I, L.grid);
  } else if (L.fq) {
    fakequant_forward(scratch.data(), params[size_t(L.W)].w.data(), params[size_t(L.scale)].w.data(), L.zero.data(),
                      L.O, L.I, L.grid);
  } else if (L.peqa) {
    peqa_forward(scratch.data(), L.codes.data(), params[size_t(L.scale)].w.data(), L.zero.data(), L.O, L.I, L.grid);
  } else {
    if constexpr (std::is_same_v<T, float>) {
      L.qbase->dequantize(scratch.data());
    } else {
      std::vector<float> f = L.qbase->dense();
      std::copy(f.begin(), f.end(), scratch.begin());
    }
  }
  return scratch.data();
}

template <class T>
std::vector<T> TrainModel<T>::l4q_merged(const TLinear<T>& L) const {
  std::vector<T> Wm(size_t(L.O) * L.I);
  l4q_merge(Wm.data(), params[size_t(L.W)].w.data(), params[size_t(L.A)].w.data(), params[size_t(L.B)].w.data(), L.O,
            L.I, L.rank, L.lora_scale);
  return Wm;
}

template <class T>
void TrainModel<T>::lin_forward(const TLinear<T>& L, T* out, const T* x, int N) {
  const Precision pr = setup.precision;  // F32: W and x as they are
  const T* W = rounded(pr, weight(L, wscratch_), size_t(L.O) * L.I, loww_);
  x = rounded(pr, x, size_t(N) * L.I, lowx_);
  matmul_forward(out, x, W, L.bias >= 0 ? params[size_t(L.bias)].w.data() : nullptr, N, L.I, L.O);
  if (L.A >= 0 && !L.l4q) {  // out += (α/r) · (x·Aᵀ) · Bᵀ
    const int r = L.rank;
    std::vector<T> xa(size_t(N) * r);  // (N, r)
    gemm<T>(false, true, N, r, L.I, T(1), x, L.I, params[size_t(L.A)].w.data(), L.I, T(0), xa.data(), r);
    gemm<T>(false, true, N, L.O, r, T(L.lora_scale), xa.data(), r, params[size_t(L.B)].w.data(), r, T(1), out, L.O);
  }
  round_to_precision(pr, out, size_t(N) * L.O);
}

template <class T>
void TrainModel<T>::lin_backward(const TLinear<T>& L, T* dx, const T* dout, const T* x, int N) {
  const int O = L.O, I = L.I;
  const Precision pr = setup.precision;  // the operands a 16-bit GEMM reads; dW, dx accumulate in T
  const T* W = rounded(pr, weight(L, wscratch_), size_t(O) * I, loww_);
  x = rounded(pr, x, size_t(N) * I, lowx_);
  dout = rounded(pr, dout, size_t(N) * O, lowd_);
  const bool w_tr = L.W >= 0 && params[size_t(L.W)].trainable;
  const bool s_tr = L.scale >= 0 && params[size_t(L.scale)].trainable;
  T* dW = nullptr;
  if (L.l4q) {
    dwscratch_.assign(size_t(O) * I, T(0));  // dŴ, chained through fq to the merge, then to A, B (train/l4q.h)
    dW = dwscratch_.data();
  } else if (!L.fq && !L.peqa && w_tr) {
    dW = params[size_t(L.W)].g.data();
  } else if ((L.fq && (w_tr || s_tr)) || (L.peqa && s_tr)) {
    dwscratch_.assign(size_t(O) * I, T(0));  // dŴ, then chained to W (STE) and s (LSQ / PEQA)
    dW = dwscratch_.data();
  }
  T* db = L.bias >= 0 && params[size_t(L.bias)].trainable ? params[size_t(L.bias)].g.data() : nullptr;
  matmul_backward(dx, dW, db, dout, x, W, N, I, O);
  if (L.fq && dW)
    fakequant_backward(w_tr ? params[size_t(L.W)].g.data() : nullptr, s_tr ? params[size_t(L.scale)].g.data() : nullptr,
                       dW, params[size_t(L.W)].w.data(), params[size_t(L.scale)].w.data(), L.zero.data(), O, I, L.grid);
  if (L.peqa && dW)
    peqa_backward(params[size_t(L.scale)].g.data(), dW, L.codes.data(), L.zero.data(), O, I, L.grid);
  if (L.l4q) {
    Param<T>& A = params[size_t(L.A)];
    Param<T>& B = params[size_t(L.B)];
    std::vector<T> Wm = l4q_merged(L), dWm(size_t(O) * I, T(0));
    fakequant_backward(dWm.data(), s_tr ? params[size_t(L.scale)].g.data() : nullptr, dW, Wm.data(),
                       params[size_t(L.scale)].w.data(), L.zero.data(), O, I, L.grid);
    l4q_adapter_backward(A.trainable ? A.g.data() : nullptr, B.trainable ? B.g.data() : nullptr, dWm.data(),
                         A.w.data(), B.w.data(), O, I, L.rank, L.lora_scale);
  }
  if (L.A >= 0 && !L.l4q) {
    // xa = x·Aᵀ (N,r); dxa = s·dout·B (N,r); dB += s·doutᵀ·xa; dA += dxaᵀ·x; dx += dxa·A
    const int r = L.rank;
    const T s = T(L.lora_scale);
    Param<T>& A = params[size_t(L.A)];
    Param<T>& B = params[size_t(L.B)];
    std::vector<T> xa(size_t(N) * r), dxa(size_t(N) * r);
    gemm<T>(false, true, N, r, I, T(1), x, I, A.w.data(), I, T(0), xa.data(), r);
    gemm<T>(false, false, N, r, O, s, dout, O, B.w.data(), r, T(0), dxa.data(), r);
    if (B.trainable) gemm<T>(true, false, O, r, N, s, dout, O, xa.data(), r, T(1), B.g.data(), r);
    if (A.trainable) gemm<T>(true, false, r, I, N, T(1), dxa.data(), r, x, I, T(1), A.g.data(), I);
    if (dx) gemm<T>(false, false, N, I, r, T(1), dxa.data(), r, A.w.data(), I, T(1), dx, I);
  }
}

// ---------------------------------------------------------------------------------------------------
// Block forward / backward

template <class T>
BlockLinearOps<T> TrainModel<T>::block_ops(int l) {
  BlockLinearOps<T> ops;
  ops.forward = [this, l](LinearKind k, T* out, const T* x, int N) { lin_forward(linear(l, int(k)), out, x, N); };
  ops.backward = [this, l](LinearKind k, T* dx, const T* dout, const T* x, int N) {
    lin_backward(linear(l, int(k)), dx, dout, x, N);
  };
  return ops;
}

template <class T>
void TrainModel<T>::block_forward(int l, const T* x, Acts& a, T* xout) {
  decoder_block_forward(block_shape(cfg, l, B_, T_), rope_cs_.data(), params[size_t(attn_norm_[size_t(l)])].w.data(),
                        params[size_t(ffn_norm_[size_t(l)])].w.data(), block_ops(l), x, a, xout);
}

template <class T>
void TrainModel<T>::block_backward(int l, const T* x, const Acts& a, T* dx) {
  auto grad = [&](int p) { return params[size_t(p)].trainable ? params[size_t(p)].g.data() : nullptr; };
  const int fn = ffn_norm_[size_t(l)], an = attn_norm_[size_t(l)];
  decoder_block_backward(block_shape(cfg, l, B_, T_), rope_cs_.data(), params[size_t(an)].w.data(),
                         params[size_t(fn)].w.data(), grad(an), grad(fn), block_ops(l), x, a, dx);
}

template <class T>
void TrainModel<T>::block_only_forward(int l, const T* x, int B, int T_in, T* xout) {
  B_ = B;
  T_ = T_in;
  if (rope_T_ < T_in) {
    rope_cs_ = rope_table<T>(rope_, cfg.head_dim, T_in);
    rope_T_ = T_in;
  }
  block_forward(l, x, solo_, xout);
}

template <class T>
void TrainModel<T>::block_only_backward(int l, const T* x, const T* dxout) {
  std::vector<T> dx(dxout, dxout + size_t(B_) * T_ * cfg.hidden);
  block_backward(l, x, solo_, dx.data());
}

// ---------------------------------------------------------------------------------------------------
// Whole model

template <class T>
void TrainModel<T>::forward(const int* ids, int B, int T_in) {
  B_ = B;
  T_ = T_in;
  const int N = B * T_in, C = cfg.hidden, V = cfg.vocab, L = cfg.n_layers;
  for (int n = 0; n < N; n++)
    check(ids[n] >= 0 && ids[n] < V, "token id {} outside the vocabulary (0..{})", ids[n], V - 1);
  if (rope_T_ < T_in) {
    rope_cs_ = rope_table<T>(rope_, cfg.head_dim, T_in);
    rope_T_ = T_in;
  }
  ids_.assign(ids, ids + N);
  xs_.resize(size_t(L) + 1);
  for (auto& x : xs_) x.resize(size_t(N) * C);
  embedding_forward(xs_[0].data(), ids, params[size_t(wte_)].w.data(), N, C);
  round_to_precision(setup.precision, xs_[0].data(), xs_[0].size());  // a lookup in the 16-bit compute copy
  acts_.resize(setup.recompute ? 1 : size_t(L));
  for (int l = 0; l < L; l++)
    block_forward(l, xs_[size_t(l)].data(), acts_[setup.recompute ? 0 : size_t(l)], xs_[size_t(l) + 1].data());
  lnf_.resize(size_t(N) * C);
  rstdf_.resize(size_t(N));
  logits_.resize(size_t(N) * V);
  rmsnorm_forward(lnf_.data(), rstdf_.data(), xs_[size_t(L)].data(), params[size_t(fnorm_)].w.data(), N, C, cfg.rms_eps);
  const int hw = head_ >= 0 ? head_ : wte_;  // tied: logits = lnf · wteᵀ
  const Precision pr = setup.precision;
  matmul_forward(logits_.data(), rounded(pr, lnf_.data(), lnf_.size(), lowx_),
                 rounded(pr, params[size_t(hw)].w.data(), size_t(V) * C, loww_), (const T*)nullptr, N, C, V);
  round_to_precision(pr, logits_.data(), logits_.size());
}

template <class T>
void TrainModel<T>::backward(const T* dlogits, const std::vector<const T*>* dhidden) {
  const int N = B_ * T_, C = cfg.hidden, V = cfg.vocab, L = cfg.n_layers;
  auto grad = [&](int p) { return params[size_t(p)].trainable ? params[size_t(p)].g.data() : nullptr; };
  std::vector<T> dlnf(size_t(N) * C, T(0)), dx(size_t(N) * C, T(0));  // (N, C)
  const int hw = head_ >= 0 ? head_ : wte_;
  const Precision pr = setup.precision;
  matmul_backward(dlnf.data(), grad(hw), (T*)nullptr, rounded(pr, dlogits, size_t(N) * V, lowd_),
                  rounded(pr, lnf_.data(), lnf_.size(), lowx_), rounded(pr, params[size_t(hw)].w.data(), size_t(V) * C, loww_),
                  N, C, V);
  rmsnorm_backward(dx.data(), grad(fnorm_), dlnf.data(), xs_[size_t(L)].data(), params[size_t(fnorm_)].w.data(),
                   rstdf_.data(), N, C);
  auto add_hidden = [&](int l) {  // extra gradient on hidden(l) = xs_[l + 1]
    if (!dhidden || size_t(l + 1) >= dhidden->size() || !(*dhidden)[size_t(l + 1)]) return;
    const T* d = (*dhidden)[size_t(l + 1)];
    for (size_t i = 0; i < dx.size(); i++) dx[i] += d[i];
  };
  add_hidden(L - 1);
  std::vector<T> scratch_out;
  for (int l = L - 1; l >= 0; l--) {
    if (setup.recompute) {  // run the block again from its saved input
      scratch_out.resize(size_t(N) * C);
      block_forward(l, xs_[size_t(l)].data(), acts_[0], scratch_out.data());
    }
    block_backward(l, xs_[size_t(l)].data(), acts_[setup.recompute ? 0 : size_t(l)], dx.data());
    add_hidden(l - 1);
  }
  if (T* dw = grad(wte_)) embedding_backward(dw, dx.data(), ids_.data(), N, C);
}

// ---------------------------------------------------------------------------------------------------
// Export

template <class T>
std::vector<float> TrainModel<T>::merged_weight(const TLinear<T>& L) const {
  std::vector<T> scratch;
  const T* W = weight(L, scratch);
  std::vector<float> Wm(W, W + size_t(L.O) * L.I);
  if (L.A >= 0 && !L.l4q) {  // W + (α/r)·B·A
    const auto& A = params[size_t(L.A)].w;
    const auto& B = params[size_t(L.B)].w;
    for (int o = 0; o < L.O; o++)
      for (int i = 0; i < L.I; i++) {
        double s = 0;
        for (int j = 0; j < L.rank; j++) s += double(B[size_t(o) * L.rank + j]) * A[size_t(j) * L.I + i];
        Wm[size_t(o) * L.I + i] += float(L.lora_scale * s);
      }
  }
  return Wm;
}

template <class T>
std::unique_ptr<Model> TrainModel<T>::to_model(const Model& src, const QuantGrid* requant) const {
  auto m = std::make_unique<Model>();
  m->cfg = cfg;
  m->dir = src.dir;
  m->recipe = src.recipe;
  m->embed = to_f(params[size_t(wte_)].w);
  m->final_norm = to_f(params[size_t(fnorm_)].w);
  for (int l = 0; l < cfg.n_layers; l++) {
    Block b;
    b.attn_norm = to_f(params[size_t(attn_norm_[size_t(l)])].w);
    b.ffn_norm = to_f(params[size_t(ffn_norm_[size_t(l)])].w);
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const TLinear<T>& L = linear(l, k);
      Linear& out = b.lin[size_t(k)];
      if (L.fq || L.peqa || L.l4q) {
        const int64_t G = L.grid.ngroups(L.I);
        std::vector<float> s = to_f(params[size_t(L.scale)].w);
        std::vector<uint8_t> q = L.codes, z(size_t(L.O * G));
        for (size_t i = 0; i < z.size(); i++) z[i] = uint8_t(L.zero[i]);
        if (L.fq || L.l4q) {  // L4Q: codes of the merge W + (α/r)BA with the learned scales
          q.resize(size_t(L.O) * L.I);
          std::vector<float> W = to_f(L.l4q ? l4q_merged(L) : params[size_t(L.W)].w);
          codes_for(W.data(), L.O, L.I, L.grid, s.data(), L.zero.data(), q.data());
        }
        out.w = QIntMatrix::from_codes(L.O, L.I, L.grid, q.data(), s.data(), L.grid.sym ? nullptr : z.data());
      } else {
        std::vector<float> Wm = merged_weight(L);
        if (requant && (L.A >= 0 || L.qbase))
          out.w = QIntMatrix::quantize(L.O, L.I, Wm.data(), *requant);
        else
          out.w = std::make_unique<DenseF32>(L.O, L.I, std::move(Wm));
      }
      if (L.bias >= 0) out.bias = to_f(params[size_t(L.bias)].w);
    }
    m->blocks.push_back(std::move(b));
  }
  if (cfg.tie_embeddings)
    m->retie_head();
  else
    m->lm_head.w = std::make_unique<DenseF32>(cfg.vocab, cfg.hidden, to_f(params[size_t(head_)].w));
  return m;
}

template class TrainModel<float>;
template class TrainModel<double>;

}  // namespace lmp::train

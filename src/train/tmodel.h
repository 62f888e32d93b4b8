// The training-side copy of a Llama-family Model: parameters as plain arrays of T (float to train, double
// for gradient checks), built from a loaded Model through WeightMatrix::dense() and exported back into a
// Model (DenseF32, or QIntMatrix for fake-quantized / PEQA layers). Each Linear is one of
//   dense      y = x·Wᵀ + b                                   (W trainable or frozen)
//   LoRA       y = x·Wᵀ + b + (α/r)·(x·Aᵀ)·Bᵀ                 (W frozen; A (r,I), B (O,r) trainable)
//   QLoRA      as LoRA with W a frozen 4-bit QIntMatrix dequantized on the fly, never updated
//   fake-quant y = x·Ŵᵀ + b, Ŵ = fq(W; s, z)                  (W and the group scales s trainable, LSQ/STE)
//   PEQA       y = x·Ŵᵀ + b, Ŵ = (q − z)·s                     (frozen integer codes, only s trainable)
//   L4Q        y = x·Ŵᵀ + b, Ŵ = fq(W + (α/r)·B·A; s, z)       (W frozen; A, B, s trainable; train/l4q.h)
// Activations of every block are kept for the backward pass, or, with recompute, only each block's input
// (the residual stream) and the block is run again during backward (memory: one block of activations).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernels/qint.h"
#include "model/forward.h"
#include "model/model.h"
#include "train/block.h"
#include "train/mixed_precision.h"

namespace lmp::train {

enum class Mode { Full, Lora, Qat, Peqa };

struct TrainSetup {
  Mode mode = Mode::Full;
  std::string targets = ".*";        // regex over Linear names: which Linears get LoRA / fake-quant / PEQA
  // LoRA / QLoRA / LoftQ
  int rank = 8;
  float alpha = 16;
  bool qlora = false;                // frozen base = 4-bit QIntMatrix of W (base_grid)
  QuantGrid base_grid{4, false, 64};
  int loftq_iters = 0;               // > 0: LoftQ initialisation of the quantized base and A, B
  bool l4q = false;                  // L4Q: LoRA whose merge W + (α/r)BA is fake-quantized on grid (train/l4q.h)
  // QAT / PEQA
  QuantGrid grid{4, false, 32};
  bool asym_clip = false;            // BitDistiller-style asymmetric clipping init
  // what else learns (Full / QAT only: LoRA and PEQA train nothing but adapters / scales)
  bool train_embed = true, train_norms = true, freeze_all = false;
  std::vector<int> drop_layers;      // depth pruning: these source blocks are left out
  bool recompute = false;
  uint64_t seed = 0;                 // LoRA A init
  Precision precision = Precision::F32;  // bf16/f16: Linears and the head compute on rounded copies (mixed_precision.h)
};

template <class T>
struct Param {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<T> w, g;
  bool trainable = true;
  bool decay = true;    // weight decay applies (matrices, not norms/scales)
  float lr_mult = 1;    // per-tensor learning-rate multiplier (quantizer scales)
  bool positive = false;  // clamped > 0 after each step (scales)
  size_t size() const { return w.size(); }
};

template <class T>
struct TLinear {
  std::string name;  // "model.layers.3.mlp.down_proj"
  int O = 0, I = 0;
  int W = -1, bias = -1;                 // param indices; W absent for QLoRA and PEQA
  std::unique_ptr<QIntMatrix> qbase;     // QLoRA frozen base
  bool fq = false, peqa = false;         // fake-quant (QAT) / PEQA
  bool l4q = false;                      // L4Q: Ŵ = fq(W + (α/r)·B·A); W frozen, A, B, scale learn
  QuantGrid grid;
  int scale = -1;                        // param (O, G)
  std::vector<int> zero;                 // (O, G), fixed
  std::vector<uint8_t> codes;            // (O, I), PEQA
  int A = -1, B = -1;                    // LoRA params (r, I), (O, r)
  int rank = 0;
  double lora_scale = 0;                 // α / r
};

template <class T>
class TrainModel {
 public:
  TrainModel(const Model& m, const TrainSetup& s);
  ModelConfig cfg;
  TrainSetup setup;
  std::vector<Param<T>> params;

  // Forward over ids (B, T): logits (B·T, V). Keeps what backward needs.
  void forward(const int* ids, int B, int T_);
  const std::vector<T>& logits() const { return logits_; }
  // Residual stream after block l (l = −1: the embedding), (B·T, C); valid after forward.
  const T* hidden(int l) const { return xs_[size_t(l + 1)].data(); }
  // Accumulates parameter gradients from dlogits (B·T, V) and optional extra gradients on hidden(l)
  // (dhidden[l + 1] for l = −1..L−1; null entries skipped).
  void backward(const T* dlogits, const std::vector<const T*>* dhidden = nullptr);
  void zero_grad();
  void clamp_positive();
  // Block l alone on a residual-stream input x (B·T, C) → xout (block-wise methods: Norm Tweaking). Keeps the
  // block's activations for block_only_backward, which accumulates block l's trainable gradients from d xout.
  void block_only_forward(int l, const T* x, int B, int T_, T* xout);
  void block_only_backward(int l, const T* x, const T* dxout);
  int attn_norm_param(int l) const { return attn_norm_[size_t(l)]; }
  int ffn_norm_param(int l) const { return ffn_norm_[size_t(l)]; }  // after an optimizer step: scales stay > 0

  int n_layers() const { return cfg.n_layers; }
  TLinear<T>& linear(int l, int k) { return lins_[size_t(l) * kLinearsPerBlock + size_t(k)]; }
  const TLinear<T>& linear(int l, int k) const { return lins_[size_t(l) * kLinearsPerBlock + size_t(k)]; }
  int64_t n_trainable() const;
  // Adds a parameter (also used for trainer-side tensors such as TED's projections); returns its index.
  int add_param(const std::string& name, std::vector<int64_t> shape, std::vector<T> w, bool trainable, bool decay);
  // Effective weight of a Linear (O, I) (LoRA merged), in f32.
  std::vector<float> merged_weight(const TLinear<T>& L) const;
  // Exports into a Model (tokenizer dir and recipe from src): dense layers DenseF32, fake-quant / PEQA
  // layers QIntMatrix (codes from the learned scales); LoRA merged into W (requantized with requant_grid
  // when given, else f32).
  std::unique_ptr<Model> to_model(const Model& src, const QuantGrid* requant_grid = nullptr) const;

 private:
  using Acts = BlockActs<T>;  // one block's saved activations
  void build_linear(TLinear<T>& L, const Linear& src, const std::string& name, bool base_trainable, bool target);
  const T* weight(const TLinear<T>& L, std::vector<T>& scratch) const;
  std::vector<T> l4q_merged(const TLinear<T>& L) const;  // W + (α/r)·B·A
  void lin_forward(const TLinear<T>& L, T* out, const T* x, int N);
  void lin_backward(const TLinear<T>& L, T* dx, const T* dout, const T* x, int N);
  void block_forward(int l, const T* x, Acts& a, T* xout);
  void block_backward(int l, const T* x, const Acts& a, T* dx /* in: d xout, out: d x */);
  BlockLinearOps<T> block_ops(int l);

  int wte_ = -1, head_ = -1, fnorm_ = -1;
  std::vector<int> attn_norm_, ffn_norm_;
  std::vector<TLinear<T>> lins_;
  Rope rope_;
  std::vector<T> rope_cs_;
  int B_ = 0, T_ = 0, rope_T_ = 0;
  std::vector<int> ids_;
  std::vector<std::vector<T>> xs_;  // (L+1) × (N, C) residual stream at block boundaries
  std::vector<Acts> acts_;          // (L), or one scratch with recompute
  Acts solo_;                       // block_only_forward's activations
  std::vector<T> lnf_, rstdf_, logits_;
  std::vector<T> wscratch_, dwscratch_;
  std::vector<T> loww_, lowx_, lowd_;  // 16-bit-rounded copies of a weight, an input, a gradient (mixed precision)
};

}  // namespace lmp::train

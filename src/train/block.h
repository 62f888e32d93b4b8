// One Llama decoder block, forward and backward, on B sequences of T tokens (N = B·T rows), with the block's
// Linears supplied by the caller: TrainModel plugs in its dense / LoRA / fake-quant / PEQA Linears, block-wise
// reconstruction (train/block_recon.h: OmniQuant, SignRound) plugs in fake-quantized weights of one block.
//   xmid = x + o_proj(attn(rope(q), rope(k), v)),  q/k/v = Linears of rmsnorm(x; attn_norm)
//   xout = xmid + down(silu(gate(h)) · up(h)),      h = rmsnorm(xmid; ffn_norm)
// The math is model/forward.cpp's (the inference forward); the layers are train/layers.h.
#pragma once
#include <functional>
#include <vector>

#include "model/model.h"

namespace lmp::train {

// The activations backward needs (one block).
template <class T>
struct BlockActs {
  std::vector<T> ln1, rstd1, q, k, v, att, y, xmid, ln2, rstd2, g, u, h, tmp;
};

struct BlockShape {
  int B = 0, T = 0, C = 0, hs = 0, H = 0, KV = 0, F = 0;
  double eps = 1e-5;
  int N() const { return B * T; }
};
BlockShape block_shape(const ModelConfig& cfg, int layer, int B, int T);

template <class T>
struct BlockLinearOps {
  // out (N, O) = x (N, I) · Ŵ_kᵀ (+ b)
  std::function<void(LinearKind, T* out, const T* x, int N)> forward;
  // dx (N, I) += dout · Ŵ_k, plus whatever parameter gradients the Linear accumulates
  std::function<void(LinearKind, T* dx, const T* dout, const T* x, int N)> backward;
};

// rope_cs: train::rope_table for at least T positions.
template <class T>
void decoder_block_forward(const BlockShape& d, const T* rope_cs, const T* attn_norm, const T* ffn_norm,
                           const BlockLinearOps<T>& lin, const T* x, BlockActs<T>& a, T* xout);
// dx holds d xout on entry and d x on return; dattn_norm / dffn_norm accumulate (null: not needed).
template <class T>
void decoder_block_backward(const BlockShape& d, const T* rope_cs, const T* attn_norm, const T* ffn_norm,
                            T* dattn_norm, T* dffn_norm, const BlockLinearOps<T>& lin, const T* x,
                            const BlockActs<T>& a, T* dx);

}  // namespace lmp::train

#include "train/block.h"

#include "train/layers.h"

namespace lmp::train {

BlockShape block_shape(const ModelConfig& cfg, int l, int B, int T) {
  BlockShape d;
  d.B = B, d.T = T, d.C = cfg.hidden, d.hs = cfg.head_dim;
  d.H = cfg.heads(l), d.KV = cfg.kv_heads(l), d.F = cfg.ffn(l);
  d.eps = cfg.rms_eps;
  return d;
}

template <class T>
void decoder_block_forward(const BlockShape& d, const T* cs, const T* attn_norm, const T* ffn_norm,
                           const BlockLinearOps<T>& lin, const T* x, BlockActs<T>& a, T* xout) {
  const int N = d.N(), C = d.C, hs = d.hs, H = d.H, KV = d.KV, F = d.F;
  auto sz = [](std::vector<T>& v, size_t n) { v.resize(n); };
  sz(a.ln1, size_t(N) * C), sz(a.rstd1, size_t(N)), sz(a.q, size_t(N) * H * hs), sz(a.k, size_t(N) * KV * hs);
  sz(a.v, size_t(N) * KV * hs), sz(a.att, size_t(d.B) * H * d.T * d.T), sz(a.y, size_t(N) * H * hs);
  sz(a.xmid, size_t(N) * C), sz(a.ln2, size_t(N) * C), sz(a.rstd2, size_t(N));
  sz(a.g, size_t(N) * F), sz(a.u, size_t(N) * F), sz(a.h, size_t(N) * F), sz(a.tmp, size_t(N) * C);
  // attention
  rmsnorm_forward(a.ln1.data(), a.rstd1.data(), x, attn_norm, N, C, d.eps);
  lin.forward(LinearKind::Q, a.q.data(), a.ln1.data(), N);
  lin.forward(LinearKind::K, a.k.data(), a.ln1.data(), N);
  lin.forward(LinearKind::V, a.v.data(), a.ln1.data(), N);
  rope_forward(a.q.data(), cs, N, d.T, H, hs);
  rope_forward(a.k.data(), cs, N, d.T, KV, hs);
  attention_forward(a.y.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(), d.B, d.T, H, KV, hs);
  lin.forward(LinearKind::O, a.tmp.data(), a.y.data(), N);
  for (size_t i = 0; i < size_t(N) * C; i++) a.xmid[i] = x[i] + a.tmp[i];
  // MLP
  rmsnorm_forward(a.ln2.data(), a.rstd2.data(), a.xmid.data(), ffn_norm, N, C, d.eps);
  lin.forward(LinearKind::Gate, a.g.data(), a.ln2.data(), N);
  lin.forward(LinearKind::Up, a.u.data(), a.ln2.data(), N);
  swiglu_forward(a.h.data(), a.g.data(), a.u.data(), int64_t(N) * F);
  lin.forward(LinearKind::Down, a.tmp.data(), a.h.data(), N);
  for (size_t i = 0; i < size_t(N) * C; i++) xout[i] = a.xmid[i] + a.tmp[i];
}

template <class T>
void decoder_block_backward(const BlockShape& d, const T* cs, const T* attn_norm, const T* ffn_norm, T* dattn_norm,
                            T* dffn_norm, const BlockLinearOps<T>& lin, const T* x, const BlockActs<T>& a, T* dx) {
  const int N = d.N(), C = d.C, hs = d.hs, H = d.H, KV = d.KV, F = d.F;
  // dx holds d xout: it flows unchanged into d xmid (residual), plus the MLP branch.
  std::vector<T> dh(size_t(N) * F, T(0)), dg(size_t(N) * F, T(0)), du(size_t(N) * F, T(0));
  std::vector<T> dln(size_t(N) * C, T(0));
  lin.backward(LinearKind::Down, dh.data(), dx, a.h.data(), N);
  swiglu_backward(dg.data(), du.data(), dh.data(), a.g.data(), a.u.data(), int64_t(N) * F);
  lin.backward(LinearKind::Gate, dln.data(), dg.data(), a.ln2.data(), N);
  lin.backward(LinearKind::Up, dln.data(), du.data(), a.ln2.data(), N);
  rmsnorm_backward(dx, dffn_norm, dln.data(), a.xmid.data(), ffn_norm, a.rstd2.data(), N, C);
  // dx is now d xmid: it flows into d x, plus the attention branch.
  std::vector<T> dy(size_t(N) * H * hs, T(0)), dq(size_t(N) * H * hs, T(0));
  std::vector<T> dk(size_t(N) * KV * hs, T(0)), dv(size_t(N) * KV * hs, T(0));
  lin.backward(LinearKind::O, dy.data(), dx, a.y.data(), N);
  attention_backward(dq.data(), dk.data(), dv.data(), dy.data(), a.att.data(), a.q.data(), a.k.data(), a.v.data(),
                     d.B, d.T, H, KV, hs);
  rope_backward(dq.data(), cs, N, d.T, H, hs);
  rope_backward(dk.data(), cs, N, d.T, KV, hs);
  std::fill(dln.begin(), dln.end(), T(0));
  lin.backward(LinearKind::Q, dln.data(), dq.data(), a.ln1.data(), N);
  lin.backward(LinearKind::K, dln.data(), dk.data(), a.ln1.data(), N);
  lin.backward(LinearKind::V, dln.data(), dv.data(), a.ln1.data(), N);
  rmsnorm_backward(dx, dattn_norm, dln.data(), x, attn_norm, a.rstd1.data(), N, C);
}

#define LMP_INSTANTIATE(T)                                                                                   \
  template void decoder_block_forward<T>(const BlockShape&, const T*, const T*, const T*,                   \
                                         const BlockLinearOps<T>&, const T*, BlockActs<T>&, T*);             \
  template void decoder_block_backward<T>(const BlockShape&, const T*, const T*, const T*, T*, T*,          \
                                          const BlockLinearOps<T>&, const T*, const BlockActs<T>&, T*);
LMP_INSTANTIATE(float)
LMP_INSTANTIATE(double)
#undef LMP_INSTANTIATE

}  // namespace lmp::train

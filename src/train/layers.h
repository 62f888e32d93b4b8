// Training-side layers of the Llama-family decoder: every *_forward beside its *_backward (llm.c manner).
// Templated on the float type T (float for training, double for the finite-difference gradient checks).
// Conventions: arguments are outputs, inputs, weights, dims; N = B·T rows (B sequences of T tokens);
// backward functions ACCUMULATE into their d<name> outputs (+=), so callers zero gradients once per step;
// a null gradient pointer means "not needed".
// The math agrees with model/forward.cpp (the inference forward): HF rotate-half RoPE, GQA head h reading
// kv head h / (H/KV), RMSNorm x·w/√(mean x² + eps), SwiGLU silu(gate)·up.
#pragma once
#include <cstdint>
#include <vector>

namespace lmp {
class Rope;
}
namespace lmp::train {

// C (M, N) = alpha · op(A) · op(B) + beta · C, row-major, through OpenBLAS (sgemm / dgemm).
template <class T>
void gemm(bool transA, bool transB, int M, int N, int K, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
          T* C, int ldc);

// ---- embedding: out[n] = wte[ids[n]] -----------------------------------------------------------------
template <class T> void embedding_forward(T* out /*(N,C)*/, const int* ids /*(N)*/, const T* wte /*(V,C)*/, int N, int C);
// dwte[ids[n]] += dout[n]
template <class T> void embedding_backward(T* dwte /*(V,C)*/, const T* dout /*(N,C)*/, const int* ids, int N, int C);

// ---- RMSNorm: r_n = 1/√(mean_i x²_ni + eps), out_ni = x_ni · r_n · w_i ------------------------------------
template <class T>
void rmsnorm_forward(T* out /*(N,C)*/, T* rstd /*(N)*/, const T* x /*(N,C)*/, const T* w /*(C)*/, int N, int C,
                     double eps);
// dw_i += Σ_n dout_ni x_ni r_n ;  dx_ni += r_n (dout_ni w_i) − r_n³ / C · x_ni · Σ_j dout_nj w_j x_nj
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int C);

// ---- linear: out (N,O) = x (N,I) · Wᵀ (O,I) + b --------------------------------------------------------
template <class T> void matmul_forward(T* out, const T* x, const T* W, const T* bias, int N, int I, int O);
// dx (N,I) += dout · W ;  dW (O,I) += doutᵀ · x ;  db (O) += Σ_n dout_n
template <class T>
void matmul_backward(T* dx, T* dW, T* db, const T* dout, const T* x, const T* W, int N, int I, int O);

// ---- RoPE (HF rotate-half): for i < hs/2, (x_i, x_{i+hs/2}) of every head rotates by angle pos·θ_i, where
// row n of a (B,T) batch sits at pos = n mod T. cs holds (T, hs/2) pairs (cos, sin).
// forward: y0 = x0 c − x1 s, y1 = x1 c + x0 s (in place). backward is the inverse rotation of the gradient:
// dx0 = dy0 c + dy1 s, dx1 = dy1 c − dy0 s (in place on d, which holds dy on entry).
template <class T> void rope_forward(T* x /*(N,heads,hs)*/, const T* cs, int N, int T_, int heads, int hs);
template <class T> void rope_backward(T* d /*(N,heads,hs)*/, const T* cs, int N, int T_, int heads, int hs);
// (T, hs/2, 2) cos/sin table read off model/forward.h's Rope itself (so scaling and rounding agree): rotating
// the vector (1..1, 0..0) by position t yields (cos, sin) of every frequency.
template <class T> std::vector<T> rope_table(const Rope& rope, int hs, int T_);

// ---- causal GQA attention, per sequence b and query head h (kv head h / (H/KV)):
//   a_tj = softmax_j≤t (q_t · k_j / √hs),  out_t = Σ_j a_tj v_j
template <class T>
void attention_forward(T* out /*(B,T,H,hs)*/, T* att /*(B,H,T,T)*/, const T* q /*(B,T,H,hs)*/,
                       const T* k /*(B,T,KV,hs)*/, const T* v /*(B,T,KV,hs)*/, int B, int T_, int H, int KV, int hs);
// da_tj = dout_t · v_j ; dv_j += a_tj dout_t ; dp_tj = a_tj (da_tj − Σ_i a_ti da_ti) ;
// dq_t += Σ_j dp_tj k_j / √hs ; dk_j += Σ_t dp_tj q_t / √hs
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* att, const T* q, const T* k, const T* v, int B,
                        int T_, int H, int KV, int hs);

// ---- SwiGLU: out = silu(g) · u, silu(g) = g σ(g), silu'(g) = σ(g) (1 + g (1 − σ(g)))
template <class T> void swiglu_forward(T* out, const T* g, const T* u, int64_t n);
template <class T> void swiglu_backward(T* dg, T* du, const T* dout, const T* g, const T* u, int64_t n);

// ---- softmax of rows: p (N,V) = softmax(logits / temp), computed with the max subtracted, in double.
template <class T> void softmax_rows(T* p, const T* logits, int N, int V, double temp = 1.0);

}  // namespace lmp::train

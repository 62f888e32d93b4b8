#include "train/layers.h"

#include "model/forward.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace lmp::train {

template <>
void gemm<float>(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}
template <>
void gemm<double>(bool tA, bool tB, int M, int N, int K, double alpha, const double* A, int lda, const double* B,
                  int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, tA ? CblasTrans : CblasNoTrans, tB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B,
              ldb, beta, C, ldc);
}

// ---------------------------------------------------------------------------------------------------
// embedding

template <class T>
void embedding_forward(T* out, const int* ids, const T* wte, int N, int C) {
  for (int n = 0; n < N; n++) std::copy_n(wte + size_t(ids[n]) * C, C, out + size_t(n) * C);
}

template <class T>
void embedding_backward(T* dwte, const T* dout, const int* ids, int N, int C) {
  for (int n = 0; n < N; n++) {
    T* d = dwte + size_t(ids[n]) * C;
    const T* g = dout + size_t(n) * C;
    for (int i = 0; i < C; i++) d[i] += g[i];
  }
}

// ---------------------------------------------------------------------------------------------------
// RMSNorm

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int N, int C, double eps) {
#pragma omp parallel for if (N > 64)
  for (int n = 0; n < N; n++) {
    const T* xn = x + size_t(n) * C;
    double ss = 0;
    for (int i = 0; i < C; i++) ss += double(xn[i]) * xn[i];
    T r = T(1.0 / std::sqrt(ss / C + eps));
    rstd[n] = r;
    for (int i = 0; i < C; i++) out[size_t(n) * C + i] = xn[i] * r * w[i];
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int N, int C) {
  // dw is reduced over rows: serial over n (C is small), dx rows are independent.
  if (dw)
    for (int n = 0; n < N; n++)
      for (int i = 0; i < C; i++) dw[i] += dout[size_t(n) * C + i] * x[size_t(n) * C + i] * rstd[n];
  if (!dx) return;
#pragma omp parallel for if (N > 64)
  for (int n = 0; n < N; n++) {
    const T* xn = x + size_t(n) * C;
    const T* dn = dout + size_t(n) * C;
    double dot = 0;
    for (int i = 0; i < C; i++) dot += double(dn[i]) * w[i] * xn[i];
    const double r = rstd[n], k = r * r * r / C * dot;
    for (int i = 0; i < C; i++) dx[size_t(n) * C + i] += T(r * dn[i] * w[i] - k * xn[i]);
  }
}

// ---------------------------------------------------------------------------------------------------
// linear

template <class T>
void matmul_forward(T* out, const T* x, const T* W, const T* bias, int N, int I, int O) {
  gemm<T>(false, true, N, O, I, T(1), x, I, W, I, T(0), out, O);
  if (bias)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < O; o++) out[size_t(n) * O + o] += bias[o];
}

template <class T>
void matmul_backward(T* dx, T* dW, T* db, const T* dout, const T* x, const T* W, int N, int I, int O) {
  if (dx) gemm<T>(false, false, N, I, O, T(1), dout, O, W, I, T(1), dx, I);
  if (dW) gemm<T>(true, false, O, I, N, T(1), dout, O, x, I, T(1), dW, I);
  if (db)
    for (int n = 0; n < N; n++)
      for (int o = 0; o < O; o++) db[o] += dout[size_t(n) * O + o];
}

// ---------------------------------------------------------------------------------------------------
// RoPE

template <class T>
std::vector<T> rope_table(const Rope& rope, int hs, int T_) {
  const int half = hs / 2;
  std::vector<T> cs(size_t(T_) * half * 2);
  std::vector<float> x(static_cast<size_t>(hs));
  for (int t = 0; t < T_; t++) {
    std::fill(x.begin(), x.begin() + half, 1.0f);
    std::fill(x.begin() + half, x.end(), 0.0f);
    rope.apply(x.data(), 1, t);  // x_i = 1·c − 0·s, x_{i+half} = 0·c + 1·s
    for (int i = 0; i < half; i++) {
      cs[(size_t(t) * half + i) * 2] = T(x[size_t(i)]);
      cs[(size_t(t) * half + i) * 2 + 1] = T(x[size_t(i + half)]);
    }
  }
  return cs;
}

template <class T>
void rope_forward(T* x, const T* cs, int N, int T_, int heads, int hs) {
  const int half = hs / 2;
  for (int n = 0; n < N; n++) {
    const T* c = cs + size_t(n % T_) * half * 2;
    for (int h = 0; h < heads; h++) {
      T* xh = x + (size_t(n) * heads + h) * hs;
      for (int i = 0; i < half; i++) {
        T x0 = xh[i], x1 = xh[i + half], co = c[2 * i], si = c[2 * i + 1];
        xh[i] = x0 * co - x1 * si;
        xh[i + half] = x1 * co + x0 * si;
      }
    }
  }
}

template <class T>
void rope_backward(T* d, const T* cs, int N, int T_, int heads, int hs) {
  const int half = hs / 2;
  for (int n = 0; n < N; n++) {
    const T* c = cs + size_t(n % T_) * half * 2;
    for (int h = 0; h < heads; h++) {
      T* dh = d + (size_t(n) * heads + h) * hs;
      for (int i = 0; i < half; i++) {
        T d0 = dh[i], d1 = dh[i + half], co = c[2 * i], si = c[2 * i + 1];
        dh[i] = d0 * co + d1 * si;
        dh[i + half] = d1 * co - d0 * si;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// causal GQA attention

template <class T>
void attention_forward(T* out, T* att, const T* q, const T* k, const T* v, int B, int T_, int H, int KV, int hs) {
  const int group = H / KV;
  const T scale = T(1.0 / std::sqrt(double(hs)));
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++) {
      const int kh = h / group;
      for (int t = 0; t < T_; t++) {
        const T* qt = q + ((size_t(b) * T_ + t) * H + h) * hs;
        T* a = att + ((size_t(b) * H + h) * T_ + t) * T_;
        T mx = -1e30f;
        for (int j = 0; j <= t; j++) {
          const T* kj = k + ((size_t(b) * T_ + j) * KV + kh) * hs;
          T s = 0;
          for (int i = 0; i < hs; i++) s += qt[i] * kj[i];
          a[j] = s * scale;
          mx = std::max(mx, a[j]);
        }
        double sum = 0;
        for (int j = 0; j <= t; j++) {
          a[j] = T(std::exp(double(a[j] - mx)));
          sum += a[j];
        }
        const T inv = T(1.0 / sum);
        for (int j = 0; j <= t; j++) a[j] *= inv;
        for (int j = t + 1; j < T_; j++) a[j] = 0;
        T* ot = out + ((size_t(b) * T_ + t) * H + h) * hs;
        std::fill_n(ot, hs, T(0));
        for (int j = 0; j <= t; j++) {
          const T* vj = v + ((size_t(b) * T_ + j) * KV + kh) * hs;
          for (int i = 0; i < hs; i++) ot[i] += a[j] * vj[i];
        }
      }
    }
}

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* att, const T* q, const T* k, const T* v, int B,
                        int T_, int H, int KV, int hs) {
  const int group = H / KV;
  const T scale = T(1.0 / std::sqrt(double(hs)));
  // One task per (sequence, kv head): the query heads of a group write the same dk/dv rows.
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int b = 0; b < B; b++)
    for (int kh = 0; kh < KV; kh++) {
      std::vector<T> da(static_cast<size_t>(T_));
      for (int h = kh * group; h < (kh + 1) * group; h++)
        for (int t = 0; t < T_; t++) {
          const T* a = att + ((size_t(b) * H + h) * T_ + t) * T_;
          const T* dot = dout + ((size_t(b) * T_ + t) * H + h) * hs;
          const T* qt = q + ((size_t(b) * T_ + t) * H + h) * hs;
          T* dqt = dq + ((size_t(b) * T_ + t) * H + h) * hs;
          T sum = 0;
          for (int j = 0; j <= t; j++) {
            const T* vj = v + ((size_t(b) * T_ + j) * KV + kh) * hs;
            T* dvj = dv + ((size_t(b) * T_ + j) * KV + kh) * hs;
            T s = 0;
            for (int i = 0; i < hs; i++) {
              s += dot[i] * vj[i];
              dvj[i] += a[j] * dot[i];
            }
            da[size_t(j)] = s;
            sum += a[j] * s;
          }
          for (int j = 0; j <= t; j++) {
            const T dp = a[j] * (da[size_t(j)] - sum) * scale;
            const T* kj = k + ((size_t(b) * T_ + j) * KV + kh) * hs;
            T* dkj = dk + ((size_t(b) * T_ + j) * KV + kh) * hs;
            for (int i = 0; i < hs; i++) {
              dqt[i] += dp * kj[i];
              dkj[i] += dp * qt[i];
            }
          }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// SwiGLU

template <class T>
void swiglu_forward(T* out, const T* g, const T* u, int64_t n) {
#pragma omp parallel for if (n > 1 << 16)
  for (int64_t i = 0; i < n; i++) {
    T s = T(1) / (T(1) + std::exp(-g[i]));
    out[i] = g[i] * s * u[i];
  }
}

template <class T>
void swiglu_backward(T* dg, T* du, const T* dout, const T* g, const T* u, int64_t n) {
#pragma omp parallel for if (n > 1 << 16)
  for (int64_t i = 0; i < n; i++) {
    T s = T(1) / (T(1) + std::exp(-g[i]));
    dg[i] += dout[i] * u[i] * s * (T(1) + g[i] * (T(1) - s));
    du[i] += dout[i] * g[i] * s;
  }
}

template <class T>
void softmax_rows(T* p, const T* logits, int N, int V, double temp) {
#pragma omp parallel for if (N > 16)
  for (int n = 0; n < N; n++) {
    const T* z = logits + size_t(n) * V;
    T* pn = p + size_t(n) * V;
    double mx = -1e300, sum = 0;
    for (int j = 0; j < V; j++) mx = std::max(mx, double(z[j]) / temp);
    for (int j = 0; j < V; j++) sum += (pn[j] = T(std::exp(double(z[j]) / temp - mx)));
    for (int j = 0; j < V; j++) pn[j] = T(pn[j] / sum);
  }
}

#define LMP_INSTANTIATE(T)                                                                                      \
  template void embedding_forward<T>(T*, const int*, const T*, int, int);                                      \
  template void embedding_backward<T>(T*, const T*, const int*, int, int);                                     \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int, int, double);                              \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int, int);                 \
  template void matmul_forward<T>(T*, const T*, const T*, const T*, int, int, int);                            \
  template void matmul_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int);                   \
  template std::vector<T> rope_table<T>(const Rope&, int, int);                                                                         \
  template void rope_forward<T>(T*, const T*, int, int, int, int);                                             \
  template void rope_backward<T>(T*, const T*, int, int, int, int);                                            \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, int, int, int, int, int);           \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, int, int, \
                                      int, int, int);                                                          \
  template void swiglu_forward<T>(T*, const T*, const T*, int64_t);                                            \
  template void swiglu_backward<T>(T*, T*, const T*, const T*, const T*, int64_t);                             \
  template void softmax_rows<T>(T*, const T*, int, int, double);
LMP_INSTANTIATE(float)
LMP_INSTANTIATE(double)
#undef LMP_INSTANTIATE

}  // namespace lmp::train

#include "train/l4q.h"

#include <algorithm>

#include "train/layers.h"

namespace lmp::train {

template <class T>
void l4q_merge(T* Wm, const T* W0, const T* A, const T* B, int O, int I, int r, double scale) {
  std::copy(W0, W0 + size_t(O) * I, Wm);
  gemm<T>(false, false, O, I, r, T(scale), B, r, A, I, T(1), Wm, I);
}

template <class T>
void l4q_adapter_backward(T* dA, T* dB, const T* dWm, const T* A, const T* B, int O, int I, int r, double scale) {
  if (dB) gemm<T>(false, true, O, r, I, T(scale), dWm, I, A, I, T(1), dB, r);
  if (dA) gemm<T>(true, false, r, I, O, T(scale), B, r, dWm, I, T(1), dA, I);
}

template void l4q_merge<float>(float*, const float*, const float*, const float*, int, int, int, double);
template void l4q_merge<double>(double*, const double*, const double*, const double*, int, int, int, double);
template void l4q_adapter_backward<float>(float*, float*, const float*, const float*, const float*, int, int, int,
                                          double);
template void l4q_adapter_backward<double>(double*, double*, const double*, const double*, const double*, int, int,
                                           int, double);

}  // namespace lmp::train

// Helpers shared by the training tests (test_train.cpp, test_train13.cpp).
#pragma once
#include <random>
#include <vector>

#include "train/losses.h"
#include "train/tmodel.h"

namespace lmp::test {

// n values ~ N(0, scale²), seeded.
inline std::vector<double> rnd(size_t n, uint32_t seed, double scale = 1.0) {
  std::mt19937 g(seed);
  std::normal_distribution<double> d(0, scale);
  std::vector<double> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// n uniform random token ids in 0..V−1.
inline std::vector<int> ids_for(int n, int V, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int> v(static_cast<size_t>(n));
  for (auto& x : v) x = int(g() % uint32_t(V));
  return v;
}

// CE loss of the model over (B, T) ids predicting the next id; fills grads when backward.
template <class T>
double model_loss(train::TrainModel<T>& tm, const std::vector<int>& ids, int B, int T_, bool backward) {
  std::vector<int> tgt(ids.size());
  for (size_t i = 0; i < ids.size(); i++) tgt[i] = (i + 1) % size_t(T_) ? ids[i + 1] : -1;
  tm.forward(ids.data(), B, T_);
  std::vector<T> d(tm.logits().size());
  double L = train::cross_entropy(d.data(), tm.logits().data(), tgt.data(), B * T_, tm.cfg.vocab);
  if (backward) {
    tm.zero_grad();
    tm.backward(d.data());
  }
  return L;
}

}  // namespace lmp::test

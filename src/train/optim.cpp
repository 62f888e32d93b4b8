#include "train/optim.h"

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"

namespace lmp::train {

double lr_at(const OptimConfig& c, int step) {
  if (c.warmup > 0 && step < c.warmup) return c.lr * double(step + 1) / c.warmup;
  if (c.total <= c.warmup) return c.lr;
  const double p = std::min(1.0, double(step - c.warmup) / double(c.total - c.warmup));
  const double lo = c.lr * c.min_lr_frac;
  return lo + 0.5 * (c.lr - lo) * (1 + std::cos(M_PI * p));
}

template <class T>
Optimizer<T>::Optimizer(const OptimConfig& c, const std::vector<Param<T>>& params) : c_(c) {
  check(c.kind == "adamw" || c.kind == "lion", "--optim '{}' is not known (choose adamw, lion)", c.kind);
  check(c.lr > 0 && std::isfinite(c.lr), "--lr must be a positive number (got {})", c.lr);
  m_.resize(params.size());
  v_.resize(params.size());
  for (size_t i = 0; i < params.size(); i++) {
    if (!params[i].trainable) continue;
    m_[i].assign(params[i].size(), T(0));
    if (c.kind == "adamw") v_[i].assign(params[i].size(), T(0));
  }
}

template <class T>
int64_t Optimizer<T>::state_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < m_.size(); i++) n += int64_t(m_[i].size() + v_[i].size());
  return n * int64_t(sizeof(T));
}

template <class T>
double Optimizer<T>::clip_grad_norm(std::vector<Param<T>>& params) const {
  double ss = 0;
  for (const auto& p : params)
    if (p.trainable)
      for (T g : p.g) ss += double(g) * g;
  const double norm = std::sqrt(ss);
  if (c_.clip > 0 && norm > c_.clip && std::isfinite(norm)) {
    const T f = T(c_.clip / norm);
    for (auto& p : params)
      if (p.trainable)
        for (T& g : p.g) g *= f;
  }
  return norm;
}

template <class T>
void Optimizer<T>::step(std::vector<Param<T>>& params, double lr) {
  t_++;
  const double b1 = c_.beta1, b2 = c_.beta2;
  const double bc1 = 1 - std::pow(b1, double(t_)), bc2 = 1 - std::pow(b2, double(t_));
  for (size_t i = 0; i < params.size(); i++) {
    Param<T>& p = params[i];
    if (!p.trainable) continue;
    const double plr = lr * p.lr_mult, wd = p.decay ? c_.weight_decay : 0.0;
    T* w = p.w.data();
    const T* g = p.g.data();
    T* m = m_[i].data();
    const int64_t n = int64_t(p.size());
    if (c_.kind == "adamw") {
      T* v = v_[i].data();
#pragma omp parallel for if (n > 1 << 15)
      for (int64_t k = 0; k < n; k++) {
        m[k] = T(b1 * m[k] + (1 - b1) * g[k]);
        v[k] = T(b2 * v[k] + (1 - b2) * double(g[k]) * g[k]);
        const double mh = m[k] / bc1, vh = v[k] / bc2;
        w[k] = T(w[k] - plr * (mh / (std::sqrt(vh) + c_.eps) + wd * w[k]));
      }
    } else {
#pragma omp parallel for if (n > 1 << 15)
      for (int64_t k = 0; k < n; k++) {
        const double c = b1 * m[k] + (1 - b1) * g[k];
        const double sg = c > 0 ? 1.0 : (c < 0 ? -1.0 : 0.0);
        w[k] = T(w[k] - plr * (sg + wd * w[k]));
        m[k] = T(b2 * m[k] + (1 - b2) * g[k]);
      }
    }
  }
}

template <class T>
void Optimizer<T>::save(SafeTensorsWriter& w, const std::vector<Param<T>>& params) const {
  for (size_t i = 0; i < params.size(); i++) {
    if (!params[i].trainable) continue;
    std::vector<float> f(m_[i].begin(), m_[i].end());
    w.add_f32("optim.m." + params[i].name, {int64_t(f.size())}, f.data());
    if (!v_[i].empty()) {
      f.assign(v_[i].begin(), v_[i].end());
      w.add_f32("optim.v." + params[i].name, {int64_t(f.size())}, f.data());
    }
  }
  w.set_metadata("optim_t", std::to_string(t_));
  w.set_metadata("optim_kind", c_.kind);
}

template <class T>
void Optimizer<T>::load(const SafeTensorsFile& f, const std::vector<Param<T>>& params) {
  auto it = f.metadata().find("optim_kind");
  check(it != f.metadata().end() && it->second == c_.kind, "{}: checkpoint optimizer '{}' differs from --optim {}",
        f.path(), it == f.metadata().end() ? "" : it->second, c_.kind);
  t_ = std::stoll(f.metadata().at("optim_t"));
  auto read = [&](const std::string& name, std::vector<T>& dst) {
    const TensorView* t = f.find(name);
    check(t && size_t(t->numel()) == dst.size(), "{}: checkpoint lacks {} of {} values (was it written by another "
          "training setup?)", f.path(), name, dst.size());
    std::vector<float> v = t->to_f32();
    std::copy(v.begin(), v.end(), dst.begin());
  };
  for (size_t i = 0; i < params.size(); i++) {
    if (!params[i].trainable) continue;
    read("optim.m." + params[i].name, m_[i]);
    if (!v_[i].empty()) read("optim.v." + params[i].name, v_[i]);
  }
}

template class Optimizer<float>;
template class Optimizer<double>;

}  // namespace lmp::train

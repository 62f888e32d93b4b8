// Optimizers over a TrainModel's trainable parameters, global-norm gradient clipping, the learning-rate
// schedule, and the optimizer's part of a checkpoint.
//   AdamW (Loshchilov & Hutter 2019), step t ≥ 1:
//     m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g² ;  m̂ = m / (1−β1ᵗ) ;  v̂ = v / (1−β2ᵗ)
//     w ← w − lr · ( m̂ / (√v̂ + eps) + wd · w )        (decoupled decay, only on decay tensors)
//   Lion (Chen et al. 2023):
//     c = β1 m + (1−β1) g ;  w ← w − lr · ( sign(c) + wd · w ) ;  m ← β2 m + (1−β2) g
//   Clipping: if ‖g‖₂ (over all trainable tensors) > clip, every g is scaled by clip / ‖g‖₂.
//   Schedule: linear warm-up over `warmup` steps, then cosine from lr down to min_lr_frac·lr at `total`.
#pragma once
#include <string>
#include <vector>

#include "train/tmodel.h"

namespace lmp {
class SafeTensorsWriter;
class SafeTensorsFile;
}  // namespace lmp

namespace lmp::train {

struct OptimConfig {
  std::string kind = "adamw";  // adamw | lion
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  double clip = 1.0;           // ≤ 0: off
  int warmup = 0, total = 0;   // schedule (total 0: constant lr after warm-up)
  double min_lr_frac = 0.1;
};

double lr_at(const OptimConfig& c, int step);  // step counts from 0

template <class T>
class Optimizer {
 public:
  Optimizer(const OptimConfig& c, const std::vector<Param<T>>& params);
  // Returns ‖g‖₂ before clipping (NaN/inf propagate, so the caller can stop).
  double clip_grad_norm(std::vector<Param<T>>& params) const;
  void step(std::vector<Param<T>>& params, double lr);
  int64_t t() const { return t_; }
  // "<prefix>m.<name>", "<prefix>v.<name>" for every trainable tensor, and t in metadata key "optim_t".
  void save(SafeTensorsWriter& w, const std::vector<Param<T>>& params) const;
  void load(const SafeTensorsFile& f, const std::vector<Param<T>>& params);
  const OptimConfig& config() const { return c_; }
  // Bytes of optimizer state held (moments): AdamW m and v (2 per trainable value), Lion m (1), × sizeof(T).
  int64_t state_bytes() const;

 private:
  OptimConfig c_;
  int64_t t_ = 0;
  std::vector<std::vector<T>> m_, v_;
};

}  // namespace lmp::train

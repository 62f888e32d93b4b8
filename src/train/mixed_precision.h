// Mixed-precision training (Micikevicius et al. 2018, "Mixed Precision Training"; bf16 as in Kalamkar et al.
// 2019): the forward and backward compute in a 16-bit format while the optimizer updates f32 master weights,
// and the loss is multiplied by a scale S before backward so that small gradients survive the 16-bit format;
// gradients are divided by S before the step.
//
// What is emulated here (this CPU has no native bf16/f16 GEMM, OpenBLAS sgemm is used): every Linear (and the
// LM head) computes from 16-bit-rounded copies of its weight and its input, its output is rounded to 16 bits,
// and in backward the incoming gradient d out is rounded too — exactly what a bf16 GEMM with f32 accumulation
// reads and writes. Gradients accumulate in f32 into the master weights' gradient buffers; norms, softmax,
// attention and the loss stay f32 (as in AMP, which keeps reductions in f32); LoRA adapters' rank-r products
// read the rounded input but their own A, B in f32. The emulation costs extra time
// (rounded copies); it is a numerical model of mixed precision, not a speed-up.
//
// Memory in a real deployment (per parameter P, activations A saved for backward): f32 training holds weights 4P +
// gradients 4P + AdamW moments 8P + activations 4A; bf16 mixed precision holds the f32 master 4P + a bf16 compute
// copy 2P + gradients 4P (f32) + moments 8P + activations 2A — the saving is half the activation memory (the
// dominant term at long sequences) and 2× GEMM throughput, at +2P bytes for the compute copy.
//
// Loss scaling: bf16 has f32's exponent range, so its gradients rarely underflow or overflow and S mostly stays
// put; f16 (5 exponent bits, max 65504, smallest subnormal 6e-8) is where scaling matters, and Precision::F16 is
// offered for that reason. The dynamic scaler (as in Micikevicius et al. / PyTorch GradScaler): a step whose
// unscaled gradients hold an inf/NaN is skipped (master weights and optimizer state untouched) and S halves;
// after `window` consecutive good steps S doubles. S is a power of two, so scaling and unscaling are exact.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace lmp::train {

enum class Precision { F32, BF16, F16 };

Precision parse_precision(const std::string& s);  // "f32" | "bf16" | "f16"; lmp::Error otherwise
const char* precision_name(Precision p);

// Rounds x to the 16-bit format (round-to-nearest-even; f16 overflows to ±inf), in place. F32: no-op.
template <class T>
void round_to_precision(Precision p, T* x, size_t n);
// x itself (F32) or a rounded copy held in scratch.
template <class T>
const T* rounded(Precision p, const T* x, size_t n, std::vector<T>& scratch);

struct LossScaleConfig {
  double init = 65536;  // initial S (a power of two keeps scaling exact)
  bool dynamic = true;  // false: S fixed, a non-finite gradient still skips the step
  int window = 200;     // good steps before S doubles
  double max_scale = 16777216.0 * 65536.0;  // 2^40
};

class LossScaler {
 public:
  explicit LossScaler(const LossScaleConfig& c);
  double scale() const { return s_; }
  void scale_grad(float* g, size_t n) const;  // g ← S·g (the gradient of S·loss)
  // g ← g / S over every tensor; true when all are finite.
  template <class P>
  bool unscale(std::vector<P>& params) const {
    bool ok = true;
    const float inv = float(1.0 / s_);
    for (auto& p : params)
      if (p.trainable)
        for (auto& g : p.g) {
          g *= inv;
          ok = ok && std::isfinite(g);
        }
    return ok;
  }
  // After a step: finite → count towards doubling; not finite → halve (dynamic) and count a skipped step.
  void update(bool finite);
  int skipped() const { return skipped_; }

 private:
  LossScaleConfig c_;
  double s_;
  int good_ = 0, skipped_ = 0;
};

}  // namespace lmp::train

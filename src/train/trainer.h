// The training loop shared by `lmpress train lora|qat|distill`: batches of B windows of T+1 tokens drawn
// from a token stream (seeded per step, so a resumed run draws the same batches), a loss (cross-entropy
// on the next token, or a distillation loss against a teacher's logits, optionally plus TED hidden-state
// alignment), backward, global-norm clipping, AdamW/Lion, and checkpoints (safetensors: trainable
// tensors, optimizer moments, step) every ckpt_every steps and at the end.
// A non-finite loss or gradient norm stops training with lmp::Error naming the step and the last good
// checkpoint, which is left untouched.
// Data sources besides a text file: text the teacher samples from BOS (LLM-QAT's data-free distillation,
// Liu et al. 2023), black-box KD data (weighted, src/distill/kd_data.h), and, per step with probability
// `onpolicy`, sequences the student samples itself (GKD's on-policy data, Agarwal et al. 2024).
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "train/losses.h"
#include "train/mixed_precision.h"
#include "train/optim.h"
#include "train/tmodel.h"

namespace lmp::train {

// A token stream and, per position, whether predicting that token counts (mask 0 = prompt, not scored) or, for
// black-box KD data (distill/kd_data.h), its loss weight (0 = not scored; cross-entropy only).
struct TokenStream {
  std::vector<int> ids;
  std::vector<uint8_t> scored;  // empty = all scored
  std::vector<float> weight;    // empty = every scored position weighs 1
};

TokenStream stream_from_file(const Tokenizer& tok, const std::string& path, TextFormat fmt);
// Sequences sampled from BOS (temperature, seeded), concatenated until n_tokens (each starts with BOS).
TokenStream sample_stream(const Model& m, long n_tokens, int max_len, float temperature, uint64_t seed);
// Throws lmp::Error "teacher and student tokenizers differ" unless vocab sizes, BOS/EOS and the ids of a few
// probe strings agree.
void check_same_tokenizer(const Model& teacher, const Model& student);

struct TrainOptions {
  int steps = 100, batch = 8, seqlen = 256;
  uint64_t seed = 0;
  OptimConfig optim;
  LossKind loss = LossKind::CE;
  double beta = 0.5;          // JSD β; CAKLD γ when > 0 is given, else estimated from the teacher
  bool estimate_gamma = true;
  double ce_weight = 0;       // distillation: + ce_weight · cross-entropy on the data
  double ted_weight = 0;      // TED hidden-state alignment weight (0 = off)
  double onpolicy = 0;        // GKD: probability a step trains on student samples
  double contrastive_weight = 0, contrastive_tau = 0.1;  // QuantGPT token contrastive KD on the last hidden states
  // Per-step hooks (LoRAPrune): after backward (gradients complete, before clipping) and after the update.
  std::function<void(int step)> after_backward, after_step;
  int ckpt_every = 100;
  std::string ckpt;           // checkpoint path ("" = none)
  std::string resume;         // checkpoint to resume from
  int log_every = 10;
  bool quiet = false;
  bool loss_scaling = false;  // mixed precision: scale the loss by S, unscale, skip non-finite steps
  LossScaleConfig scaler;
};

struct TrainResult {
  int steps_done = 0;
  double first_loss = 0, last_loss = 0, seconds = 0, tokens_per_s = 0;
  std::vector<double> losses;
  int64_t optimizer_state_bytes = 0;
  int skipped_steps = 0;   // loss scaling: steps skipped for non-finite gradients
  double loss_scale = 0;   // loss scaling: S at the end (0 = off)
};

// teacher may be null (cross-entropy). student_src is the Model the student was built from (used to export
// the student for on-policy sampling).
TrainResult train(TrainModel<float>& student, TrainModel<float>* teacher, const Model& student_src,
                  const TokenStream& data, const TrainOptions& o);

void save_checkpoint(const std::string& path, const TrainModel<float>& m, const Optimizer<float>& opt, int step,
                     double loss);
// Restores the trainable tensors and optimizer state; returns the step to continue from.
int load_checkpoint(const std::string& path, TrainModel<float>& m, Optimizer<float>& opt);

}  // namespace lmp::train

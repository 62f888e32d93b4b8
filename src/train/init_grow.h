// Initialisation schemes and model growth for `lmpress train pretrain` (a Llama-family model trained from
// scratch with the tokenizer of an existing model directory).
// Initialisation (norm weights 1, no biases):
//   normal  every matrix (embedding, projections, untied head) ~ N(0, 0.02²)                 (GPT-2 / Llama)
//   scaled  as normal, but the projections that write into the residual stream (o_proj, down_proj) get
//           std 0.02/√(2L) (GPT-2, Radford et al. 2019: residual-path weights scaled by 1/√N)
//   small   every matrix ~ N(0, 2/(5C)) ("SmallInit", Nguyen & Salazar 2019, "Transformers without Tears")
// Growth from a smaller trained model (stored as a fresh dense f32 model, then trained):
//   depth:Kx   stacking (Gong et al. 2019, "Efficient Training of BERT by Progressively Stacking"): the K·L
//              blocks are K copies of the trained stack, block i = small block i mod L. Not function-preserving.
//   width:H    Net2WiderNet (Chen et al. 2016, "Net2Net"), H = k·C: every residual channel and every FFN unit
//              is replicated k times. A unit's outgoing weights are split among its replicas with random
//              positive fractions summing to 1 (Net2Net divides equally; a random split preserves the function
//              just as exactly and breaks the replicas' symmetry, so they can diverge in training). With
//              RMSNorm the residual stream must stay a uniform replication: it is carried as (x, x, …)/k (the
//              embedding and the o_proj/down_proj rows are divided by k, which also makes a tied head exact),
//              and rms_norm_eps becomes eps/k², so every RMSNorm output is exactly the small model's,
//              replicated. Attention heads are unchanged (head_dim and head counts stay), hidden and FFN widths
//              grow. The grown model's logits equal the small model's up to f32 rounding.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "model/model.h"

namespace lmp::train {

enum class InitScheme { Normal, Scaled, Small };
InitScheme parse_init(const std::string& s);  // normal | scaled | small
const char* init_name(InitScheme s);

struct FreshSpec {
  int hidden = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0;  // 0: as the base model
  int head_dim = 0;                                               // 0: hidden / heads
  InitScheme init = InitScheme::Scaled;
  uint64_t seed = 0;
};

// A fresh model with base's tokenizer (dir), vocabulary, RoPE, norm eps and embedding tying, and the widths
// and depth of s.
std::unique_ptr<Model> fresh_model(const Model& base, const FreshSpec& s);

std::unique_ptr<Model> grow_depth(const Model& small, int factor);
std::unique_ptr<Model> grow_width(const Model& small, int hidden, uint64_t seed);
// "depth:2x" | "width:128" (lmp::Error naming --grow otherwise).
std::unique_ptr<Model> grow(const Model& small, const std::string& spec, uint64_t seed);

}  // namespace lmp::train

// WKVQuant (Yue, Yuan, Duanmu, Zhou, Wu, Nie 2024, "WKVQuant: Quantizing Weight and Key/Value Cache for Large
// Language Models Gains More", arXiv 2402.12065), the calibration of its KV-cache part. The cache itself
// (past-only quantization, per-token dynamic quantization after static channel smoothing) is
// model/kv_cache.h, KVMethod::Wkv (`--kv-method wkvquant` on eval/bench/generate). This stage calibrates the
// static smoothing, per channel c of the layer's K (post-RoPE) and V over the calibration tokens:
//   δ_c = (max_c + min_c) / 2,   s_c = ((max_c − min_c) / 2)^α        (x̃ = (x − δ) / s, then per token)
// and stores it in the model as Block::kv_smooth (4 × kv_heads · head_dim floats per layer).
// α is chosen per block, for K and then V, from {identity (δ = 0, s = 1), 0, 0.25, 0.5, 0.75, 1} by the
// cross-block reconstruction loss (the paper's CRR): the mean absolute error of the output of this block
// *and the next `cross_blocks` blocks* when the block is decoded token by token with the quantized cache,
// against the same blocks with an f32 cache. The paper learns δ and s by gradient descent on that loss
// (OmniQuant-style); here they stay on the max/min formula and only α is searched (the pipeline has no
// autograd through attention).
// The weight half of W4KV4 is any weight stage before this one (e.g. gptq/rtn 4-bit): the reference is the
// block as it is when this stage runs, so the loss measures the KV quantization alone.
// Stage arguments: bits (KV bits, 4; 2/4/8), group (channels per per-token group, 0 or ≥ head_dim = whole
// head; default 128 → head), cross_blocks (1; 0 = this block only), samples (8).
#pragma once
#include <cstdint>
#include <memory>

#include "calib/pipeline.h"

namespace lmp {

// δ (width) and s (width) of X (n × width) per channel as above; alpha < 0 gives the identity.
void wkv_channel_params(const float* X, int64_t n, int64_t width, double alpha, float* shift, float* scale);

std::unique_ptr<BlockModifier> make_wkvquant_modifier(const nlohmann::json& stage);

}  // namespace lmp

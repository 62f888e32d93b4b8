// Machinery shared by the structured pruning methods (depth.h, flap.h, slicegpt.h): they rewrite whole
// rows/columns/blocks, so they work on dense f32 copies of the weights (a compressed input is dequantized;
// the output is dense f32), and they rank or calibrate on token samples (calib/calib_data.h).
#pragma once
#include <functional>
#include <vector>

#include "calib/calib_data.h"
#include "model/model.h"

namespace lmp {

// Dense f32 values (out, in) of a Linear in any stored format.
std::vector<float> dense_weight(const Linear& l);
// A dense f32 Linear owning W (out, in) and an optional bias (out).
Linear make_dense_linear(int64_t out, int64_t in, std::vector<float> W, std::vector<float> bias = {});

// Rows `keep` (ascending indices) of W (rows, cols); columns `keep` of W.
std::vector<float> take_rows(const std::vector<float>& W, int64_t cols, const std::vector<int>& keep);
std::vector<float> take_cols(const std::vector<float>& W, int64_t rows, int64_t cols, const std::vector<int>& keep);

// Throws lmp::Error unless 0 < s < 1 (what: "--sparsity" or the method name).
void check_sparsity(double s, const char* what);

// Mean negative log-likelihood of the model over the samples (every token but each sample's first scored,
// as the perplexity protocol does); exp() of it is the calibration perplexity.
double calibration_nll(const Model& m, const Samples& samples);

// Runs block `layer` of m on each input x_s (L, C) (copies; inputs unchanged), in parallel over samples,
// calling hook(s, kind, X, n) on every Linear's input. out (optional) receives the block outputs.
using SampleHook = std::function<void(size_t s, LinearKind kind, const float* X, int64_t n)>;
void run_block_samples(const Model& m, int layer, const std::vector<std::vector<float>>& inputs, int L,
                       const SampleHook& hook, std::vector<std::vector<float>>* out = nullptr);

// Rewrites cfg.layer_heads / layer_kv_heads / layer_intermediate from the blocks' actual shapes
// (after rows/columns or whole blocks were removed); n_layers from blocks.size().
void sync_layer_widths(Model& m);

}  // namespace lmp

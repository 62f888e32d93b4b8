// Roofline (Williams, Waterman & Patterson, CACM 2009): attainable FLOP/s = min(peak, intensity × bandwidth).
// Machine side: STREAM triad bandwidth (McCalpin; a[i] = b[i] + s·c[i] over double arrays ≫ LLC, 3 arrays
// counted, no write-allocate, best of N, OpenMP over all cores), peak f32 FLOP/s from a register-only FMA loop
// per core (AVX2, and AVX-512 where the CPU has it), and attained OpenBLAS sgemm at 2048³.
// Model side, per token (a count of what the forward moves and computes, elementwise work ignored):
//   weight bytes W = Σ projections (nbytes as stored + bias) + LM head nbytes (the embedding when tied)
//                    + RMSNorm weights;
//   decode at context c (the new token attends c+1 positions):
//     bytes = W + one embedding row + Σ_layers 2·kv_heads·head_dim·4·(c+1)   (f32 K and V read)
//     FLOPs = 2·Σ_projections rows·cols + 2·V·C + Σ_layers 4·heads·head_dim·(c+1)
//   prefill of n tokens from an empty cache, logits of the last token only (as `lmpress bench` times it):
//     bytes = W + n embedding rows + n · Σ_layers 2·kv_heads·head_dim·4           (K/V written once)
//     FLOPs = n·2·Σ_projections rows·cols + 2·V·C + Σ_layers 4·heads·head_dim·n(n+1)/2
// Roof tokens/s = tokens / max(bytes / bandwidth, FLOPs / peak).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "model/model.h"

namespace lmp {

struct MachineRoof {
  double bandwidth_gbps = 0;     // STREAM triad, 1e9 bytes/s
  double peak_gflops = 0;        // max of the FMA loops
  double peak_gflops_avx2 = 0, peak_gflops_avx512 = 0;  // 0 when the ISA is absent
  double sgemm_gflops = 0;       // OpenBLAS sgemm attained
  int threads = 0;
  size_t stream_array_bytes = 0;
};

// STREAM triad over 3 double arrays of bytes_per_array each; best of reps; GB/s counting 3 arrays.
double stream_triad_gbps(size_t bytes_per_array, int reps, int threads);
// FMA-bound loop on registers, all threads; GFLOP/s (an FMA = 2 FLOPs).
double fma_peak_gflops_avx2(int threads);
double fma_peak_gflops_avx512(int threads);  // 0 when the CPU lacks AVX-512F
// OpenBLAS sgemm n×n×n, best of reps, GFLOP/s.
double sgemm_gflops(int n, int reps);
// Default STREAM array size: 2 × the last-level cache, at least 128 MiB, at most 512 MiB.
size_t default_stream_bytes();
MachineRoof measure_machine(size_t stream_bytes, int reps);

struct TokenCost {
  double bytes = 0, flops = 0;  // for the whole step (decode: one token; prefill: n tokens)
  int tokens = 1;
  double intensity() const { return flops / bytes; }
};
double weight_bytes(const Model& m);  // W above
TokenCost decode_cost(const Model& m, int ctx);
TokenCost prefill_cost(const Model& m, int n);

struct RoofPoint {
  TokenCost cost;
  double roof_tokens_per_s = 0, measured_tokens_per_s = 0;
  bool memory_bound = true;
  double fraction() const { return roof_tokens_per_s > 0 ? measured_tokens_per_s / roof_tokens_per_s : 0; }
};
RoofPoint roof_point(const MachineRoof& mr, const TokenCost& c, double measured_tokens_per_s);

// Times the model's Forward as `lmpress bench` does (best of reps): decode tokens/s over dtok steps after a
// context of dctx, and prefill tokens/s of n tokens.
double measure_decode_tokens_per_s(const Model& m, int dctx, int dtok, int reps);
double measure_prefill_tokens_per_s(const Model& m, int n, int reps);

nlohmann::json to_json(const MachineRoof& mr);
nlohmann::json to_json(const RoofPoint& p);

}  // namespace lmp

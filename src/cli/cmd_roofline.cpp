// lmpress roofline [--model DIR] [--stream-mib N] [--reps N] [--decode-ctx 128] [--decode-tokens 64]
//                  [--prefill 128] [--json]
// This machine's STREAM-triad bandwidth and peak f32 FLOP/s; with --model, the bytes and FLOPs per token of
// decode and prefill, their roof-limited tokens/s and the measured tokens/s as a fraction of it (eval/roofline.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/roofline.h"

namespace lmp {

int cmd_roofline(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  auto model_dir = a.opt("model");
  long mib = a.integer("stream-mib", long(default_stream_bytes() >> 20));
  int reps = int(a.integer("reps", 5));
  int dctx = int(a.integer("decode-ctx", 128));
  int dtok = int(a.integer("decode-tokens", 64));
  int pre = int(a.integer("prefill", 128));
  bool json = a.flag("json");
  a.finish();
  check(mib >= 1 && reps >= 1, "roofline: --stream-mib and --reps must be ≥ 1");
  std::fprintf(stderr, "roofline: STREAM triad over 3 × %ld MiB, FMA loops, sgemm 2048³ ...\n", mib);
  MachineRoof mr = measure_machine(size_t(mib) << 20, reps);
  nlohmann::json j = to_json(mr);
  if (model_dir) {
    auto m = load_model(*model_dir);
    check(dctx + dtok <= m->cfg.max_pos, "--decode-ctx {} + --decode-tokens {} exceed the model's {} positions", dctx,
          dtok, m->cfg.max_pos);
    // Decode steps run at contexts dctx .. dctx+dtok-1: cost at the mean context.
    RoofPoint dec = roof_point(mr, decode_cost(*m, dctx + dtok / 2), measure_decode_tokens_per_s(*m, dctx, dtok, reps));
    RoofPoint pf = roof_point(mr, prefill_cost(*m, pre), measure_prefill_tokens_per_s(*m, pre, reps));
    j["model"] = {{"dir", *model_dir},         {"weight_bytes", weight_bytes(*m)},
                  {"bytes", m->n_bytes()},     {"linear_bits_per_weight", m->linear_bits_per_weight()},
                  {"decode_ctx", dctx},        {"decode_tokens", dtok},
                  {"decode", to_json(dec)},    {"prefill_tokens", pre},
                  {"prefill", to_json(pf)}};
  }
  if (json) {
    print_json(j);
    return 0;
  }
  std::printf("threads %d\nSTREAM triad  %8.2f GB/s   (3 × %ld MiB arrays)\n", mr.threads, mr.bandwidth_gbps, mib);
  std::printf("peak f32      %8.1f GFLOP/s (FMA loop: AVX2 %.1f, AVX-512 %.1f)\n", mr.peak_gflops,
              mr.peak_gflops_avx2, mr.peak_gflops_avx512);
  std::printf("sgemm 2048³   %8.1f GFLOP/s (%.0f%% of peak)\nridge point   %8.2f FLOP/byte\n", mr.sgemm_gflops,
              100 * mr.sgemm_gflops / mr.peak_gflops, mr.peak_gflops / mr.bandwidth_gbps);
  if (model_dir) {
    for (const char* k : {"decode", "prefill"}) {
      const auto& p = j["model"][k];
      std::printf("%-8s %12.0f bytes/token %12.0f FLOP/token  intensity %7.2f  %s-bound  roof %10.1f tok/s  "
                  "measured %10.1f tok/s  (%.1f%% of roof)\n",
                  k, p["bytes_per_token"].get<double>(), p["flops_per_token"].get<double>(),
                  p["intensity_flops_per_byte"].get<double>(), p["bound"].get<std::string>().c_str(),
                  p["roof_tokens_per_s"].get<double>(), p["measured_tokens_per_s"].get<double>(),
                  100 * p["fraction_of_roof"].get<double>());
    }
  }
  return 0;
}

}  // namespace lmp

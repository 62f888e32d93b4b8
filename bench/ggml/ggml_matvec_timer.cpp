// Times ggml's own CPU mul_mat (the kernels llama.cpp runs) on one shape and type, for bench/compare-ggml.sh:
//   ggml_matvec_timer TYPE ROWS COLS N THREADS REPS  →  one JSON line {"type","rows","cols","n","us","bytes"}
// ROWS = output features (ggml's ne01), COLS = input features (ne00), N = tokens. The weights are random values
// quantized with ggml's own quantizer; the minimum over REPS graph computations is reported.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ggml-cpu.h"
#include "ggml.h"

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s TYPE ROWS COLS N THREADS REPS\n", argv[0]);
    return 2;
  }
  const char* tname = argv[1];
  const int64_t rows = std::atoll(argv[2]), cols = std::atoll(argv[3]), n = std::atoll(argv[4]);
  const int threads = std::atoi(argv[5]), reps = std::atoi(argv[6]);
  ggml_type type = GGML_TYPE_COUNT;
  for (int t = 0; t < GGML_TYPE_COUNT; t++) {
    const char* nm = ggml_type_name(ggml_type(t));
    if (nm && std::strcmp(nm, tname) == 0) type = ggml_type(t);
  }
  if (type == GGML_TYPE_COUNT) {
    std::fprintf(stderr, "unknown ggml type %s\n", tname);
    return 2;
  }
  ggml_cpu_init();
  const size_t wbytes = ggml_row_size(type, cols) * size_t(rows);
  ggml_init_params ip = {wbytes + size_t(n * (cols + rows)) * 4 + (64u << 20), nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_2d(ctx, type, cols, rows);
  ggml_tensor* b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, cols, n);
  std::mt19937 rng(42);
  std::normal_distribution<float> d(0.f, 0.02f);
  std::vector<float> w(size_t(rows * cols));
  for (auto& x : w) x = d(rng);
  if (type == GGML_TYPE_F32) {
    std::memcpy(a->data, w.data(), w.size() * 4);
  } else if (type == GGML_TYPE_F16) {
    ggml_fp32_to_fp16_row(w.data(), static_cast<ggml_fp16_t*>(a->data), int64_t(w.size()));
  } else {
    ggml_quantize_init(type);
    ggml_quantize_chunk(type, w.data(), a->data, 0, rows, cols, nullptr);
  }
  float* bx = static_cast<float*>(b->data);
  for (int64_t i = 0; i < n * cols; i++) bx[i] = d(rng) * 50.f;
  ggml_tensor* c = ggml_mul_mat(ctx, a, b);
  ggml_cgraph* gf = ggml_new_graph(ctx);
  ggml_build_forward_expand(gf, c);
  ggml_graph_compute_with_ctx(ctx, gf, threads);  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    auto t0 = std::chrono::steady_clock::now();
    ggml_graph_compute_with_ctx(ctx, gf, threads);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("{\"type\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"n\": %lld, \"us\": %.2f, \"bytes\": %zu}\n", tname,
              (long long)rows, (long long)cols, (long long)n, best * 1e6, wbytes);
  ggml_free(ctx);
  return 0;
}

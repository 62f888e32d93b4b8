// libFuzzer target for the safetensors header parser: any byte string must either parse into views that lie
// inside the buffer, or throw lmp::Error — never crash, hang or read out of bounds.
// Build: cmake -S . -B build-fuzz -DLMP_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
//        -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address && cmake --build build-fuzz --target fuzz_safetensors
// Run:   ./build-fuzz/fuzz_safetensors -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::map<std::string, lmp::TensorView> tensors;
  std::map<std::string, std::string> meta;
  try {
    lmp::parse_safetensors_header("fuzz", data, size, &tensors, &meta);
  } catch (const lmp::Error&) {
    return 0;
  }
  for (const auto& [name, t] : tensors) {
    if (t.data < data || t.data + t.nbytes > data + size) std::abort();  // a view outside the buffer is a bug
    volatile uint8_t sink = t.nbytes ? t.data[t.nbytes - 1] : 0;
    (void)sink;
  }
  return 0;
}

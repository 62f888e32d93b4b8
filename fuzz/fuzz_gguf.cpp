// libFuzzer target for the GGUF parser (built with -DLMP_FUZZ=ON and clang). Any input must either parse
// or throw lmp::Error; parsed tensors must lie inside the input, and small ones must dequantize.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const lmp::GgufContents c = lmp::parse_gguf("fuzz-input", data, size);
    for (const auto& t : c.tensors) {
      if (t.data < data || t.data + t.nbytes > data + size) std::abort();
      if (t.numel() <= 4096) {
        std::vector<uint8_t> aligned(t.data, t.data + t.nbytes);  // block structs need natural alignment
        lmp::GgufTensor copy = t;
        copy.data = aligned.data();
        (void)copy.to_f32();
      }
    }
  } catch (const lmp::Error&) {
  }
  return 0;
}

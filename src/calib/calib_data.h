// Calibration batches: N samples of L tokens cut from a text file (GPTQ-style). By default the first N
// consecutive windows of the token stream (deterministic, as the shared references use); with a seed,
// N windows at random offsets (GPTQ's original sampling).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/dataset.h"
#include "io/tokenizer.h"

namespace lmp {

struct CalibOptions {
  std::string path;
  TextFormat format = TextFormat::Text;
  int nsamples = 128;
  int seqlen = 2048;
  int64_t seed = -1;  // < 0: consecutive windows from the start
};

using Samples = std::vector<std::vector<int>>;  // (N, L)

// Throws lmp::Error naming the file when it has fewer than one window of tokens, or fewer than
// nsamples windows in consecutive mode.
Samples load_calibration(const Tokenizer& tok, const CalibOptions& o);

}  // namespace lmp

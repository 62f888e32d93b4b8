#include "calib/calib_data.h"

#include <random>

#include "core/error.h"

namespace lmp {

Samples load_calibration(const Tokenizer& tok, const CalibOptions& o) {
  check(o.nsamples >= 1, "--nsamples {}: must be ≥ 1", o.nsamples);
  check(o.seqlen >= 2, "--seqlen {}: must be ≥ 2", o.seqlen);
  std::vector<int> ids = tokenize_file(tok, o.path, o.format);
  const long windows = long(ids.size()) / o.seqlen;
  check(windows >= 1, "{}: calibration text has {} tokens, fewer than one sample of --seqlen {}", o.path, ids.size(),
        o.seqlen);
  Samples s;
  if (o.seed < 0) {
    check(windows >= o.nsamples, "{}: calibration text has {} tokens = {} windows of {}, fewer than --nsamples {}",
          o.path, ids.size(), windows, o.seqlen, o.nsamples);
    for (int i = 0; i < o.nsamples; i++)
      s.emplace_back(ids.begin() + long(i) * o.seqlen, ids.begin() + long(i + 1) * o.seqlen);
  } else {
    std::mt19937_64 rng(uint64_t(o.seed));
    std::uniform_int_distribution<long> start(0, long(ids.size()) - o.seqlen);
    for (int i = 0; i < o.nsamples; i++) {
      long a = start(rng);
      s.emplace_back(ids.begin() + a, ids.begin() + a + o.seqlen);
    }
  }
  return s;
}

}  // namespace lmp

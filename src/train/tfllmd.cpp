#include "train/tfllmd.h"

#include <cmath>
#include <random>

#include "core/error.h"

namespace lmp::train {

StudentInit parse_student_init(const std::string& s) {
  if (s == "truncate-first") return StudentInit::TruncateFirst;
  if (s == "truncate-alternate") return StudentInit::TruncateAlternate;
  if (s == "random") return StudentInit::Random;
  fail("--init '{}': want truncate-first, truncate-alternate or random", s);
}

std::vector<int> truncation_drop_layers(int L, int keep, StudentInit init) {
  check(keep > 0 && keep <= L, "--student-layers {}: want 1..{} (the teacher's depth)", keep, L);
  std::vector<char> kept(size_t(L), 0);
  if (init == StudentInit::TruncateAlternate && keep > 1) {
    for (int i = 0; i < keep; i++) kept[size_t(std::lround(double(i) * (L - 1) / (keep - 1)))] = 1;
  } else {
    for (int i = 0; i < keep; i++) kept[size_t(i)] = 1;
  }
  std::vector<int> drop;
  for (int l = 0; l < L; l++)
    if (!kept[size_t(l)]) drop.push_back(l);
  return drop;
}

template <class T>
void random_reinit(TrainModel<T>& tm, uint64_t seed, double std) {
  std::mt19937_64 rng(seed * 0x2545F4914F6CDD1Dull + 17);
  std::normal_distribution<double> nd(0, std);
  for (auto& p : tm.params) {
    const bool norm = p.shape.size() == 1 && p.name.find("norm") != std::string::npos;
    for (auto& v : p.w) v = norm ? T(1) : p.shape.size() == 1 ? T(0) : T(nd(rng));
  }
}

template void random_reinit<float>(TrainModel<float>&, uint64_t, double);
template void random_reinit<double>(TrainModel<double>&, uint64_t, double);

}  // namespace lmp::train

// Progress on stderr for long work: "label i/n  rate unit/s  ETA mm:ss". Results never go here.
#pragma once
#include <chrono>
#include <string>

namespace lmp {

class Progress {
 public:
  Progress(std::string label, long total, std::string unit = "it");
  void update(long done, long units_done = -1);  // prints at most ~4 times a second
  void finish();
  static void set_quiet(bool q);

 private:
  std::string label_, unit_;
  long total_;
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_ = false;
};

double now_seconds();  // monotonic clock
long peak_rss_bytes();  // getrusage ru_maxrss

}  // namespace lmp

#include "core/progress.h"

#include <cstdio>
#include <sys/resource.h>
#include <unistd.h>

namespace lmp {

static bool g_quiet = false;
void Progress::set_quiet(bool q) { g_quiet = q; }

Progress::Progress(std::string label, long total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

void Progress::update(long done, long units_done) {
  if (g_quiet) return;
  auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_ < std::chrono::milliseconds(250)) return;
  last_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double units = units_done >= 0 ? double(units_done) : double(done);
  double rate = el > 0 ? units / el : 0.0;
  double eta = done > 0 ? el * double(total_ - done) / double(done) : 0.0;
  std::fprintf(stderr, "\r%s %ld/%ld  %.1f %s/s  ETA %02d:%02d   ", label_.c_str(), done, total_, rate,
               unit_.c_str(), int(eta) / 60, int(eta) % 60);
  std::fflush(stderr);
  printed_ = true;
}

void Progress::finish() {
  if (printed_ && !g_quiet) std::fprintf(stderr, "\n");
  printed_ = false;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

long peak_rss_bytes() {
  struct rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return long(ru.ru_maxrss) * 1024;
}

}  // namespace lmp

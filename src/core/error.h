// lmpress errors. Every failure a user can cause (bad file, bad flag) is an lmp::Error whose message
// names the file or option and what is wrong; the CLI prints it as one line and exits with status 2.
#pragma once
#include <fmt/format.h>
#include <stdexcept>
#include <string>

namespace lmp {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// fail("{}: header length {} past end of file", path, n) — formats and throws lmp::Error.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// check(cond, "...", args) — throws lmp::Error when cond is false.
template <class... Args>
void check(bool cond, fmt::format_string<Args...> f, Args&&... args) {
  if (!cond) throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace lmp

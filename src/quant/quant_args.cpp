#include "quant/quant_args.h"

#include "core/error.h"
#include "kernels/qint.h"

namespace lmp {

double stage_real(const nlohmann::json& st, const char* key, double dflt, double lo, double hi, const char* mod) {
  if (!st.contains(key)) return dflt;
  check(st[key].is_number(), "{}: '{}' must be a number, got {}", mod, key, st[key].dump());
  double v = st[key].get<double>();
  check(v >= lo && v <= hi, "{}: {} = {} is outside [{}, {}]", mod, key, v, lo, hi);
  return v;
}

long stage_int(const nlohmann::json& st, const char* key, long dflt, long lo, long hi, const char* mod) {
  if (!st.contains(key)) return dflt;
  check(st[key].is_number_integer(), "{}: '{}' must be an integer, got {}", mod, key, st[key].dump());
  long v = st[key].get<long>();
  check(v >= lo && v <= hi, "{}: {} = {} is outside [{}, {}]", mod, key, v, lo, hi);
  return v;
}

QuantGrid grid_from_stage(const nlohmann::json& st, const char* mod) {
  QuantGrid g;
  g.bits = int(stage_int(st, "bits", 4, 1, 16, mod));
  g.group = int(stage_int(st, "group", 128, 0, 1 << 20, mod));
  g.sym = st.value("sym", false);
  g.mse = st.value("mse", false);
  check(g.bits == 2 || g.bits == 3 || g.bits == 4 || g.bits == 8, "{}: --bits {} is not supported (2, 3, 4 or 8)", mod,
        g.bits);
  check(QIntMatrix::supported(g), "{}: --group {} is not supported (0 = per output channel, 32, 64, 128 or 256)", mod,
        g.group);
  return g;
}

}  // namespace lmp

#include "cli/args.h"

#include <cstdio>

#include "core/error.h"
#include "model/kv_cache.h"

namespace lmp {

Args::Args(int argc, char** argv, int first, const std::set<std::string>& flags) {
  for (int i = first; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--", 0) == 0 && a.size() > 2) {
      std::string key = a.substr(2);
      auto eq = key.find('=');
      if (eq != std::string::npos) {
        kv_[key.substr(0, eq)] = key.substr(eq + 1);
      } else if (flags.count(key)) {
        flags_given_.insert(key);
      } else {
        check(i + 1 < argc, "option --{} needs a value", key);
        kv_[key] = argv[++i];
      }
    } else if (a == "-o") {
      check(i + 1 < argc, "option -o needs a value");
      kv_["output"] = argv[++i];
    } else {
      pos_.push_back(a);
    }
  }
}

std::optional<std::string> Args::opt(const std::string& key) const {
  used_.insert(key);
  auto it = kv_.find(key);
  if (it == kv_.end()) return std::nullopt;
  return it->second;
}

std::string Args::str(const std::string& key, const std::string& dflt) const { return opt(key).value_or(dflt); }

std::string Args::required(const std::string& key) const {
  auto v = opt(key);
  check(v.has_value(), "missing option --{}", key == "output" ? "output (-o)" : key);
  return *v;
}

long Args::integer(const std::string& key, long dflt) const {
  auto v = opt(key);
  if (!v) return dflt;
  try {
    size_t n = 0;
    long x = std::stol(*v, &n);
    check(n == v->size(), "");
    return x;
  } catch (...) {
    fail("option --{}: '{}' is not an integer", key, *v);
  }
}

double Args::real(const std::string& key, double dflt) const {
  auto v = opt(key);
  if (!v) return dflt;
  try {
    size_t n = 0;
    double x = std::stod(*v, &n);
    check(n == v->size(), "");
    return x;
  } catch (...) {
    fail("option --{}: '{}' is not a number", key, *v);
  }
}

bool Args::flag(const std::string& key) const {
  used_.insert(key);
  return flags_given_.count(key) != 0;
}

void Args::finish() const {
  for (const auto& [k, v] : kv_) check(used_.count(k), "unknown option --{}", k);
  for (const auto& k : flags_given_) check(used_.count(k), "unknown option --{}", k);
}

KVQuantOptions kv_options_from_args(const Args& a) {
  KVQuantOptions o;
  const std::string method = a.str("kv-method", "kivi");
  check(method == "kivi" || method == "wkvquant", "--kv-method {}: unknown (kivi or wkvquant)", method);
  o.method = method == "wkvquant" ? KVMethod::Wkv : KVMethod::Kivi;
  o.bits = int(a.integer("kv-bits", o.method == KVMethod::Wkv ? 4 : 0));
  o.group_tokens = int(a.integer("kv-group", 32));
  o.residual = int(a.integer("kv-residual", 32));
  o.value_group = int(a.integer("kv-value-group", 32));
  o.pre_rope = a.flag("kv-pre-rope");
  check_kv_options(o, "--kv-bits");
  return o;
}

void print_json(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

}  // namespace lmp

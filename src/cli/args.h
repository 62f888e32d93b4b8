// Command-line arguments of one lmpress sub-command: "--key value", "--flag", and positionals.
// Every option a command reads is declared by reading it; leftovers are reported as unknown (exit 2).
#pragma once
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmp {

class Args {
 public:
  // flags: option names that take no value (e.g. "json", "sym").
  Args(int argc, char** argv, int first, const std::set<std::string>& flags);
  std::string str(const std::string& key, const std::string& dflt) const;
  std::string required(const std::string& key) const;  // throws lmp::Error "missing --key"
  std::optional<std::string> opt(const std::string& key) const;
  long integer(const std::string& key, long dflt) const;
  double real(const std::string& key, double dflt) const;
  bool flag(const std::string& key) const;
  const std::vector<std::string>& positional() const { return pos_; }
  // Throws for options given but never read (typos); call after reading everything.
  void finish() const;

 private:
  std::map<std::string, std::string> kv_;
  std::set<std::string> flags_given_;
  std::vector<std::string> pos_;
  mutable std::set<std::string> used_;
};

struct KVQuantOptions;
// --kv-bits 2|4|8 [--kv-group N] [--kv-residual N] [--kv-pre-rope] [--kv-value-group N]: KIVI-style KV-cache
// quantization; --kv-method wkvquant [--kv-bits B, default 4]: WKVQuant past-only per-token 2D quantization.
KVQuantOptions kv_options_from_args(const Args& a);

// Writes results: a JSON object to stdout with --json, else the human-readable text.
void print_json(const nlohmann::json& j);

}  // namespace lmp

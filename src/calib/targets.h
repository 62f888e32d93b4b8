// Which Linears a recipe stage acts on: `targets` is a regex over Linear names
// ("model.layers.3.mlp.down_proj"), `ignore` a list of regexes that exclude (llm-compressor's convention).
#pragma once
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lmp {

class Targets {
 public:
  Targets() : Targets(".*", {}) {}
  Targets(const std::string& targets, const std::vector<std::string>& ignore);
  // Reads "targets" (string) and "ignore" (string or list) from a stage; defaults: every projection.
  static Targets from_stage(const nlohmann::json& stage);
  bool match(const std::string& linear_name) const;
  nlohmann::json to_json() const;

 private:
  std::string targets_src_;
  std::vector<std::string> ignore_src_;
  std::regex targets_;
  std::vector<std::regex> ignore_;
};

}  // namespace lmp

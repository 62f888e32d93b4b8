// Which Linears a recipe stage acts on: `targets` is a regex over Linear names
// ("model.layers.3.mlp.down_proj"), `ignore` a list of regexes that exclude (llm-compressor's convention).
#pragma once
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"

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

// Calls fn(kind, name, linear) for each Linear of block `layer` that `t` selects, in execution order.
void for_each_target(Block& b, int layer, const Targets& t,
                     const std::function<void(LinearKind, const std::string&, Linear&)>& fn);
// The per-Linear rewrite every weight-format modifier does: for each selected Linear, its dense f32 values W
// (out × in) go through make, whose result becomes the Linear's stored weight.
void rewrite_targets(Block& b, int layer, const Targets& t,
                     const std::function<WeightPtr(LinearKind, const Linear&, const std::vector<float>& W)>& make);

}  // namespace lmp

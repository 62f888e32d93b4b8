#include "calib/targets.h"

#include "core/error.h"

namespace lmp {

static std::regex compile(const std::string& re) {
  try {
    return std::regex(re, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    fail("recipe: invalid regex '{}' ({})", re, e.what());
  }
}

Targets::Targets(const std::string& targets, const std::vector<std::string>& ignore)
    : targets_src_(targets), ignore_src_(ignore), targets_(compile(targets)) {
  for (const auto& i : ignore) ignore_.push_back(compile(i));
}

Targets Targets::from_stage(const nlohmann::json& stage) {
  std::string t = stage.value("targets", ".*");
  std::vector<std::string> ign;
  if (stage.contains("ignore")) {
    const auto& i = stage["ignore"];
    if (i.is_string())
      ign.push_back(i.get<std::string>());
    else if (i.is_array())
      for (const auto& x : i) ign.push_back(x.get<std::string>());
    else
      fail("recipe: 'ignore' must be a regex or a list of regexes");
  }
  return Targets(t, ign);
}

bool Targets::match(const std::string& name) const {
  if (!std::regex_search(name, targets_)) return false;
  for (const auto& i : ignore_)
    if (std::regex_search(name, i)) return false;
  return true;
}

void for_each_target(Block& b, int layer, const Targets& t,
                     const std::function<void(LinearKind, const std::string&, Linear&)>& fn) {
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const std::string name = linear_name(layer, LinearKind(k));
    if (t.match(name)) fn(LinearKind(k), name, b.lin[size_t(k)]);
  }
}

void rewrite_targets(Block& b, int layer, const Targets& t,
                     const std::function<WeightPtr(LinearKind, const Linear&, const std::vector<float>& W)>& make) {
  for_each_target(b, layer, t, [&](LinearKind k, const std::string&, Linear& lin) {
    const std::vector<float> W = lin.w->dense();
    lin.w = make(k, lin, W);
  });
}

nlohmann::json Targets::to_json() const { return {{"targets", targets_src_}, {"ignore", ignore_src_}}; }

}  // namespace lmp

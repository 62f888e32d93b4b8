#include "lowrank/laser.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/progress.h"
#include "lowrank/layer_search.h"
#include "lowrank/svd.h"

namespace lmp {

int64_t laser_rank(double keep, int64_t m, int64_t n, const std::string& what) {
  check(keep > 0 && keep < 1, "{}: keep fraction {} is outside (0, 1) (fraction of the rank kept, e.g. 0.05)", what,
        keep);
  return std::max<int64_t>(1, int64_t(std::floor(keep * double(std::min(m, n)))));
}

nlohmann::json LaserSearch::to_json() const {
  nlohmann::json t = nlohmann::json::array(), c = nlohmann::json::array();
  for (const auto& x : table) t.push_back({{"linear", x.iv.linear}, {"keep", x.iv.keep}, {"rank", x.rank}, {"ppl", x.ppl}});
  for (const auto& x : chosen) c.push_back({{"linear", x.linear}, {"keep", x.keep}});
  return {{"metric", "calibration-window ppl with one intervention"},
          {"base_ppl", base_ppl},
          {"chosen", c},
          {"chosen_ppl", chosen_ppl},
          {"table", t}};
}

namespace {

// Finds Linear `name` of m; throws when the model has none of that name.
Linear& find_linear(Model& m, const std::string& name) {
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int kind = 0; kind < kLinearsPerBlock; kind++)
      if (linear_name(l, LinearKind(kind)) == name) return m.blocks[size_t(l)].lin[size_t(kind)];
  fail("laser: the model has no Linear named '{}'", name);
}

// The truncated replacement of lin's weight (nullptr when the factors would not be smaller: kept dense).
WeightPtr laser_weight(const Linear& lin, double keep, const std::string& name) {
  const int64_t m = lin.out(), n = lin.in(), k = laser_rank(keep, m, n, name);
  if (!lowrank_pays_or_report("laser", name, m, n, k)) return nullptr;
  std::vector<float> W = lin.w->dense();
  return svd_factorize(W.data(), m, n, k, FactorDtype::F32, name);
}

}  // namespace

LaserSearch laser_search(Model& m, const Samples& windows, const std::vector<double>& keeps, const Targets& targets,
                         int stack, bool progress) {
  check(!keeps.empty(), "laser: empty keep grid");
  check(stack >= 1, "laser: stack {} must be ≥ 1", stack);
  LaserSearch out;
  out.base_ppl = std::exp(windows_nll(m, windows));
  std::vector<std::string> names;
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int kind = 0; kind < kLinearsPerBlock; kind++)
      if (targets.match(linear_name(l, LinearKind(kind)))) names.push_back(linear_name(l, LinearKind(kind)));
  Progress prog("laser search", int64_t(names.size() * keeps.size()), "candidate");
  int64_t done = 0;
  for (const auto& name : names) {
    Linear& lin = find_linear(m, name);
    Svd svd = [&] {  // one SVD per Linear serves every keep fraction
      std::vector<float> W = lin.w->dense();
      return thin_svd(to_double(W.data(), W.size()), lin.out(), lin.in(), name);
    }();
    for (double keep : keeps) {
      const int64_t k = laser_rank(keep, lin.out(), lin.in(), name);
      if (lowrank_pays(lin.out(), lin.in(), k) && k < svd.p) {
        WeightSwap swap(lin, make_lowrank(split_sqrt(svd, k), FactorDtype::F32));
        out.table.push_back({{name, keep}, k, std::exp(windows_nll(m, windows))});
      }
      if (progress) prog.update(++done);
    }
  }
  if (progress) prog.finish();
  std::stable_sort(out.table.begin(), out.table.end(), [](const auto& a, const auto& b) { return a.ppl < b.ppl; });
  out.chosen_ppl = out.base_ppl;
  if (out.table.empty() || out.table[0].ppl >= out.base_ppl) return out;  // no intervention helps
  // Greedy stacking: best-first, one intervention per Linear, kept only when the stacked ppl drops.
  std::vector<std::unique_ptr<WeightSwap>> applied;
  std::set<std::string> used;
  for (const auto& c : out.table) {
    if (int(out.chosen.size()) >= stack || c.ppl >= out.base_ppl) break;
    if (used.count(c.iv.linear)) continue;
    Linear& lin = find_linear(m, c.iv.linear);
    auto swap = std::make_unique<WeightSwap>(lin, laser_weight(lin, c.iv.keep, c.iv.linear));
    double ppl = out.chosen.empty() ? c.ppl : std::exp(windows_nll(m, windows));
    if (ppl < out.chosen_ppl) {
      out.chosen.push_back(c.iv);
      out.chosen_ppl = ppl;
      used.insert(c.iv.linear);
      applied.push_back(std::move(swap));
    }
  }
  while (!applied.empty()) applied.pop_back();  // undo in reverse order: m is left unchanged
  return out;
}

namespace {

class LaserModifier final : public BlockModifier {
 public:
  explicit LaserModifier(const nlohmann::json& st) {
    check(st.contains("interventions") && st["interventions"].is_array(),
          "laser: needs 'interventions': [{{\"linear\": NAME, \"keep\": FRACTION}}, ...] (lmpress factorize "
          "--method laser searches for them)");
    for (const auto& iv : st["interventions"]) {
      check(iv.is_object() && iv.contains("linear") && iv["linear"].is_string() && iv.contains("keep") &&
                iv["keep"].is_number(),
            "laser: each intervention is {{\"linear\": NAME, \"keep\": FRACTION}}, got {}", iv.dump());
      LaserIntervention x{iv["linear"].get<std::string>(), iv["keep"].get<double>()};
      laser_rank(x.keep, 2, 2, x.linear);  // validates keep
      check(!by_name_.count(x.linear), "laser: {} has two interventions", x.linear);
      by_name_[x.linear] = x.keep;
    }
  }
  std::string name() const override { return "laser"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext& ctx) override {
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    for (int kind = 0; kind < kLinearsPerBlock; kind++) {
      std::string name = linear_name(ctx.layer, LinearKind(kind));
      auto it = by_name_.find(name);
      if (it == by_name_.end()) continue;
      if (WeightPtr w = laser_weight(b.lin[size_t(kind)], it->second, name)) b.lin[size_t(kind)].w = std::move(w);
    }
  }

 private:
  std::map<std::string, double> by_name_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_laser_modifier(const nlohmann::json& stage) {
  return std::make_unique<LaserModifier>(stage);
}

}  // namespace lmp

#include "search/budget_search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "kernels/qint.h"
#include "lowrank/layer_search.h"
#include "model/forward.h"

namespace lmp {

std::string QuantCandidate::label() const {
  return group > 0 ? fmt::format("int{}_g{}", bits, group) : fmt::format("int{}_row", bits);
}

std::vector<QuantCandidate> candidate_grid(const std::vector<int>& bits, const std::vector<int>& groups) {
  check(!bits.empty() && !groups.empty(), "search: need at least one candidate bit width and group size");
  std::vector<QuantCandidate> c;
  for (int b : bits)
    for (int g : groups) {
      QuantGrid grid;
      grid.bits = b;
      grid.group = g;
      check(QIntMatrix::supported(grid), "search: unsupported candidate bits {} group {} (bits 2|3|4|8, group 0|32|64|128|256)",
            b, g);
      c.push_back({b, g});
    }
  return c;
}

namespace {

// log-softmax of every position's logits, (n, V) → (n, V) in place.
void log_softmax_rows(float* x, int64_t n, int V) {
  for (int64_t t = 0; t < n; t++) {
    float* r = x + t * V;
    float mx = *std::max_element(r, r + V);
    double s = 0;
    for (int v = 0; v < V; v++) s += std::exp(double(r[v] - mx));
    float lse = mx + float(std::log(s));
    for (int v = 0; v < V; v++) r[v] -= lse;
  }
}

// Log-probabilities of every position of every window, concatenated (Σ L_w, V).
std::vector<float> window_logprobs(const Model& m, const Samples& windows) {
  const int V = m.cfg.vocab;
  size_t total = 0;
  for (const auto& w : windows) total += w.size();
  std::vector<float> out(total * size_t(V));
  Forward fw(m);
  size_t off = 0;
  for (const auto& w : windows) {
    KVCache cache(m.cfg, int(w.size()));
    fw.tokens(w.data(), int(w.size()), cache, out.data() + off * size_t(V));
    log_softmax_rows(out.data() + off * size_t(V), int64_t(w.size()), V);
    off += w.size();
  }
  return out;
}

// Mean over positions of KL(p ‖ q) given log p and log q rows.
double mean_kl(const std::vector<float>& lp, const std::vector<float>& lq, int V) {
  const size_t n = lp.size() / size_t(V);
  double s = 0;
  for (size_t t = 0; t < n; t++) {
    const float* a = lp.data() + t * size_t(V);
    const float* b = lq.data() + t * size_t(V);
    double k = 0;
    for (int v = 0; v < V; v++) k += std::exp(double(a[v])) * (double(a[v]) - double(b[v]));
    s += std::max(k, 0.0);
  }
  return n ? s / double(n) : 0;
}

}  // namespace

std::vector<LayerSensitivity> measure_sensitivity(Model& m, const Samples& windows,
                                                  const std::vector<QuantCandidate>& cands, bool progress) {
  check(!windows.empty(), "search: no calibration windows");
  check(!cands.empty(), "search: no candidates");
  const int V = m.cfg.vocab;
  std::vector<float> ref = window_logprobs(m, windows);
  std::vector<LayerSensitivity> out;
  const long total = long(m.blocks.size()) * kLinearsPerBlock * long(cands.size());
  std::optional<Progress> prog;
  if (progress) prog.emplace("sensitivity", total, "candidates");
  long done = 0;
  for (int l = 0; l < int(m.blocks.size()); l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      Linear& lin = m.blocks[size_t(l)].lin[size_t(k)];
      LayerSensitivity s;
      s.name = linear_name(l, LinearKind(k));
      s.layer = l;
      s.kind = k;
      s.weights = lin.out() * lin.in();
      std::vector<float> W = lin.w->dense();
      for (const auto& c : cands) {
        QuantGrid g;
        g.bits = c.bits;
        g.group = c.group;
        WeightPtr q = QIntMatrix::quantize(lin.out(), lin.in(), W.data(), g);
        s.bytes.push_back(int64_t(q->nbytes()));
        {
          WeightSwap swap(lin, std::move(q));
          s.kl.push_back(mean_kl(ref, window_logprobs(m, windows), V));
        }
        ++done;
        if (prog) prog->update(done);
      }
      out.push_back(std::move(s));
    }
  if (prog) prog->finish();
  return out;
}

KnapsackResult choose_under_budget(const std::vector<std::vector<int64_t>>& cost,
                                   const std::vector<std::vector<double>>& loss, int64_t budget, int64_t max_units) {
  check(cost.size() == loss.size(), "search: cost/loss tables differ in size");
  check(budget >= 0, "search: negative budget {}", budget);
  const size_t n = cost.size();
  int64_t min_total = 0;
  for (size_t i = 0; i < n; i++) {
    check(!cost[i].empty() && cost[i].size() == loss[i].size(), "search: item {} has no options", i);
    min_total += *std::min_element(cost[i].begin(), cost[i].end());
  }
  check(min_total <= budget, "search: budget {} bytes is below the cheapest choice ({} bytes)", budget, min_total);
  KnapsackResult r;
  r.unit = std::max<int64_t>(1, (budget + max_units - 1) / max_units);
  const int64_t cap = budget / r.unit;
  const double inf = std::numeric_limits<double>::infinity();
  // dp[c]: least loss of the items so far with Σ units ≤ c; pick[i][c]: option of item i at capacity c.
  std::vector<double> dp(size_t(cap + 1), 0.0), nx(size_t(cap + 1));
  std::vector<std::vector<uint8_t>> pick(n, std::vector<uint8_t>(size_t(cap + 1)));
  for (size_t i = 0; i < n; i++) {
    check(cost[i].size() <= 255, "search: too many options");
    std::vector<int64_t> u(cost[i].size());
    for (size_t o = 0; o < u.size(); o++) u[o] = (cost[i][o] + r.unit - 1) / r.unit;
    for (int64_t c = 0; c <= cap; c++) {
      double best = inf;
      uint8_t bo = 0;
      for (size_t o = 0; o < u.size(); o++) {
        if (u[o] > c) continue;
        double v = dp[size_t(c - u[o])] + loss[i][o];
        if (v < best) best = v, bo = uint8_t(o);
      }
      nx[size_t(c)] = best;
      pick[i][size_t(c)] = bo;
    }
    dp.swap(nx);
  }
  r.choice.assign(n, 0);
  if (!(dp[size_t(cap)] < inf)) {  // costs rounded up to units overflow the budget: the cheapest options fit
    for (size_t i = 0; i < n; i++) {
      r.choice[i] = int(std::min_element(cost[i].begin(), cost[i].end()) - cost[i].begin());
      r.bytes += cost[i][size_t(r.choice[i])];
      r.loss += loss[i][size_t(r.choice[i])];
    }
    return r;
  }
  int64_t c = cap;
  for (size_t i = n; i-- > 0;) {
    int o = pick[i][size_t(c)];
    r.choice[i] = o;
    c -= (cost[i][size_t(o)] + r.unit - 1) / r.unit;
    r.bytes += cost[i][size_t(o)];
    r.loss += loss[i][size_t(o)];
  }
  return r;
}

int64_t budget_bytes(const Model& m, double bpw) {
  check(bpw > 0 && std::isfinite(bpw), "search: budget {} bits/weight must be positive", bpw);
  double weights = 0;
  for (const auto& b : m.blocks)
    for (const auto& l : b.lin) weights += double(l.out() * l.in());
  return int64_t(std::floor(bpw * weights / 8.0 + 1e-9));
}

nlohmann::json search_recipe_stages(const std::vector<LayerSensitivity>& layers,
                                    const std::vector<QuantCandidate>& cands, const std::vector<int>& choice,
                                    const std::string& method) {
  check(layers.size() == choice.size(), "search: one choice per layer needed");
  std::map<std::pair<int, int>, std::vector<std::string>> by;
  for (size_t i = 0; i < layers.size(); i++) {
    const QuantCandidate& c = cands[size_t(choice[i])];
    std::string re;
    for (char ch : layers[i].name) {
      if (ch == '.') re += '\\';
      re += ch;
    }
    by[{c.bits, c.group == 0 ? 1 << 30 : c.group}].push_back(re);
  }
  nlohmann::json stages = nlohmann::json::array();
  for (const auto& [key, names] : by) {
    std::string t = "^(";
    for (size_t j = 0; j < names.size(); j++) t += (j ? "|" : "") + names[j];
    t += ")$";
    stages.push_back({{"modifier", method},
                      {"bits", key.first},
                      {"group", key.second == 1 << 30 ? 0 : key.second},
                      {"targets", t}});
  }
  return stages;
}

}  // namespace lmp

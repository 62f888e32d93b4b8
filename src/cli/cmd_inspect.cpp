// lmpress inspect DIR [--json]: architecture, parameter count, bytes per format, per-tensor table.
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "model/model.h"

namespace lmp {

int cmd_inspect(int argc, char** argv) {
  Args a(argc, argv, 2, {"json"});
  check(!a.positional().empty() || a.opt("model"), "inspect: give a model directory (lmpress inspect DIR)");
  std::string dir = a.positional().empty() ? *a.opt("model") : a.positional()[0];
  bool json = a.flag("json");
  a.finish();
  auto m = load_model(dir);
  const ModelConfig& c = m->cfg;
  std::map<std::string, std::pair<int64_t, size_t>> by_format;  // format -> (weights, bytes)
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < c.n_layers; l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const Linear& lin = m->blocks[size_t(l)].lin[size_t(k)];
      auto& f = by_format[lin.w->format()];
      f.first += lin.out() * lin.in();
      f.second += lin.w->nbytes();
      tensors.push_back({{"name", linear_name(l, LinearKind(k))},
                         {"shape", {lin.out(), lin.in()}},
                         {"format", lin.w->format()},
                         {"bytes", lin.w->nbytes()},
                         {"bits_per_weight", lin.w->bits_per_weight()}});
    }
  int64_t params = m->n_params();
  size_t bytes = m->n_bytes();
  nlohmann::json fm = nlohmann::json::object();
  for (const auto& [f, wb] : by_format) fm[f] = {{"weights", wb.first}, {"bytes", wb.second}};
  nlohmann::json j = {{"dir", dir},
                      {"architecture", c.architecture},
                      {"config", c.to_json()},
                      {"params", params},
                      {"bytes", bytes},
                      {"bits_per_weight", 8.0 * double(bytes) / double(params)},
                      {"linear_bits_per_weight", m->linear_bits_per_weight()},
                      {"formats", fm},
                      {"recipe", m->recipe},
                      {"tensors", tensors}};
  if (json) {
    print_json(j);
    return 0;
  }
  std::printf("%s  %s\n", dir.c_str(), c.architecture.c_str());
  std::printf("  hidden %d, layers %d, heads %d, kv heads %d, head_dim %d, ffn %d, vocab %d, tied %s\n", c.hidden,
              c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.intermediate, c.vocab,
              c.tie_embeddings ? "yes" : "no");
  std::printf("  params %lld, bytes %zu, bits/weight %.3f (projections %.3f)\n", (long long)params, bytes,
              8.0 * double(bytes) / double(params), m->linear_bits_per_weight());
  for (const auto& [f, wb] : by_format)
    std::printf("  format %-16s %12lld weights %12zu bytes\n", f.c_str(), (long long)wb.first, wb.second);
  std::printf("  %-44s %-14s %-16s %10s %8s\n", "tensor", "shape", "format", "bytes", "bpw");
  for (const auto& t : tensors)
    std::printf("  %-44s %-14s %-16s %10zu %8.3f\n", t["name"].get<std::string>().c_str(),
                fmt::format("{}x{}", t["shape"][0].get<int64_t>(), t["shape"][1].get<int64_t>()).c_str(),
                t["format"].get<std::string>().c_str(), t["bytes"].get<size_t>(), t["bits_per_weight"].get<double>());
  return 0;
}

}  // namespace lmp

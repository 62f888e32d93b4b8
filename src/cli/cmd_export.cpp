// lmpress export --model DIR --format gguf|gptq -o OUT [--type ...] [--strict] [--json]
// Writes a model in another ecosystem's layout; one function per format (io/), chosen by --format.
#include <cstdio>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gptq_export.h"

namespace lmp {

namespace {

int export_gptq_cmd(const Model& m, const std::string& out, bool strict, bool json) {
  GptqExportOptions o;
  o.strict = strict;
  GptqExportReport r = export_gptq(m, out, o);
  for (const auto& [name, why] : r.fallback)
    std::fprintf(stderr, "export gptq: %s written as f16: %s\n", name.c_str(), why.c_str());
  nlohmann::json fb = nlohmann::json::object();
  for (const auto& [name, why] : r.fallback) fb[name] = why;
  nlohmann::json j = {{"format", "gptq"},          {"output", out},
                      {"bits", r.grid.bits},       {"group_size", r.grid.group > 0 ? r.grid.group : -1},
                      {"sym", r.grid.sym},         {"packed_linears", r.packed},
                      {"f16_linears", fb},         {"bytes", r.bytes}};
  if (json)
    print_json(j);
  else
    std::printf("wrote %s (gptq, %d-bit, group %d): %d Linears packed, %zu as f16, %zu bytes\n", out.c_str(),
                r.grid.bits, r.grid.group, r.packed, r.fallback.size(), r.bytes);
  return 0;
}

}  // namespace

int cmd_export(int argc, char** argv) {
  Args a(argc, argv, 2, {"json", "strict"});
  const std::string format = a.required("format");
  if (format == "gguf") return export_gguf_main(a);
  std::string dir = a.required("model"), out = a.required("output");
  bool json = a.flag("json"), strict = a.flag("strict");
  a.finish();
  if (format == "gptq") return export_gptq_cmd(*load_model(dir), out, strict, json);
  fail("--format {}: unknown export format (known: gguf, gptq)", format);
}

}  // namespace lmp

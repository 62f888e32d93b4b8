// lmpress export --model DIR --format gguf [--type auto|f32|f16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k] -o OUT.gguf [--json]
// (reached through cmd_export's format switch): writes the model as a llama.cpp GGUF file; what each tensor became is printed on stderr (io/gguf_export.h).
#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "io/gguf_export.h"
#include "model/model.h"

namespace lmp {

int export_gguf_main(const Args& a) {
  const std::string model = a.required("model");
  const std::string out = a.required("output");
  GgufExportOptions opt;
  opt.type = a.str("type", "auto");
  const bool json = a.flag("json");
  a.finish();
  auto m = load_model(model);
  GgufExportResult r = export_gguf(*m, out, opt);
  std::map<std::string, int> counts;
  for (const auto& t : r.tensors) counts[ggml_traits(t.type).name]++;
  if (json) {
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : r.tensors) tensors.push_back({{"name", t.name}, {"type", ggml_traits(t.type).name}, {"how", t.how}});
    print_json({{"output", out}, {"format", "gguf"}, {"bytes", r.bytes}, {"file_type", r.file_type},
                {"types", counts}, {"tensors", tensors}});
  } else {
    std::string types;
    for (const auto& [n, k] : counts) types += fmt::format("{}{} × {}", types.empty() ? "" : ", ", k, n);
    std::printf("wrote %s (%zu bytes; %s)\n", out.c_str(), r.bytes, types.c_str());
  }
  return 0;
}

}  // namespace lmp

// lmpress report RUN_OR_MODEL... -o report.html [--png-dir DIR | --no-png] [--title T]
// One self-contained HTML page comparing runs (JSON outputs of lmpress commands, or model directories), plus
// PNG copies of its plots in DIR (default: <report stem>_plots beside the page). See eval/report.h.
#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "core/error.h"
#include "eval/report.h"

namespace lmp {

int cmd_report(int argc, char** argv) {
  Args a(argc, argv, 2, {"no-png", "json"});
  std::string out = a.required("output");
  std::string title = a.str("title", "lmpress report");
  bool no_png = a.flag("no-png");
  std::filesystem::path op(out);
  std::string png_dir = a.str("png-dir", (op.parent_path() / (op.stem().string() + "_plots")).string());
  bool json = a.flag("json");
  a.finish();
  check(!a.positional().empty(), "report: give runs (JSON files from --json) or model directories, then -o report.html");
  std::vector<ReportRun> runs;
  for (const auto& p : a.positional()) add_run_input(runs, p);
  Report r = build_report(runs, title);
  auto pngs = write_report(r, out, no_png ? "" : png_dir);
  if (json) {
    print_json({{"html", out}, {"runs", runs.size()}, {"figures", r.figures.size()}, {"png", pngs}});
    return 0;
  }
  std::printf("%s: %zu runs, %zu plots\n", out.c_str(), runs.size(), r.figures.size());
  for (const auto& p : pngs) std::printf("  %s\n", p.c_str());
  return 0;
}

}  // namespace lmp

// The report: a page rendered from synthetic runs has its table, its plots (SVG with points, Pareto front),
// PNG copies that decode and are not blank, and loads in headless Chromium without console errors.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/report.h"
#include "testutil.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

void write_json(const std::string& path, const nlohmann::json& j) {
  std::string s = j.dump();
  write_file_atomic(path, s.data(), s.size());
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) n++;
  return n;
}

// Distinct colours and the share of non-white pixels.
std::pair<size_t, double> ink(const Canvas& c) {
  std::set<uint32_t> colours;
  size_t non_white = 0;
  for (const Rgb& p : c.pixels()) {
    colours.insert(uint32_t(p.r) << 16 | uint32_t(p.g) << 8 | p.b);
    non_white += !(p.r == 255 && p.g == 255 && p.b == 255);
  }
  return {colours.size(), double(non_white) / double(c.pixels().size())};
}

// Four synthetic runs: f32, two quantized (one dominated), one bench-only merged into the f32 run.
std::vector<std::string> synthetic_inputs(const std::string& dir) {
  std::vector<std::string> in;
  struct R {
    const char* model;
    double ppl, bytes, bpw;
  };
  for (R r : {R{"/m/f32", 4.21, 1.04e6, 32}, R{"/m/rtn4", 4.57, 0.30e6, 4.5}, R{"/m/gptq4", 4.44, 0.30e6, 4.5},
              R{"/m/bad8", 6.0, 0.45e6, 8.5}}) {
    std::string p = dir + "/" + fs::path(r.model).filename().string() + "_ppl.json";
    write_json(p, {{"ppl", r.ppl}, {"bytes", r.bytes}, {"linear_bits_per_weight", r.bpw}, {"model", r.model}});
    in.push_back(p);
  }
  std::string b = dir + "/f32_bench.json";
  write_json(b, {{"model", "/m/f32"}, {"decode_tokens_per_s", 2500.0}, {"prefill_tokens_per_s", {{"128", 900.0}, {"512", 800.0}}},
                 {"bytes", 1.04e6}});
  in.push_back(b);
  std::string b2 = dir + "/rtn4_bench.json";
  write_json(b2, {{"model", "/m/rtn4"}, {"decode_tokens_per_s", 4000.0}, {"bytes", 0.30e6}});
  in.push_back(b2);
  nlohmann::json tensors = nlohmann::json::array();
  for (int l = 0; l < 3; l++)
    for (const char* n : {"self_attn.q_proj", "self_attn.k_proj", "mlp.down_proj"})
      tensors.push_back({{"name", fmt::format("model.layers.{}.{}", l, n)}, {"bits_per_weight", 3.0 + l + (n[0] == 'm')}});
  std::string ins = dir + "/mixed_inspect.json";
  write_json(ins, {{"dir", "/m/mixed"}, {"bytes", 0.5e6}, {"params", 260032}, {"tensors", tensors}});
  in.push_back(ins);
  return in;
}

}  // namespace

TEST(Report, PageFromSyntheticRunsHasTableAndPlots) {
  std::string dir = test::temp_dir("report");
  std::vector<ReportRun> runs;
  for (const auto& p : synthetic_inputs(dir)) add_run_input(runs, p);
  ASSERT_EQ(runs.size(), 5u) << "bench JSONs merge into their model's run";
  const ReportRun& f32 = runs[0];
  EXPECT_EQ(f32.name, "f32");
  EXPECT_DOUBLE_EQ(*f32.ppl, 4.21);
  EXPECT_DOUBLE_EQ(*f32.decode_tokens_per_s, 2500.0);
  EXPECT_DOUBLE_EQ(*f32.prefill_tokens_per_s, 800.0) << "longest prefill";
  EXPECT_EQ(f32.sources.size(), 2u);

  Report r = build_report(runs, "synthetic <test>");
  ASSERT_EQ(r.figures.size(), 4u);  // 3 scatters + 1 heat map
  EXPECT_NE(r.html.find("<title>synthetic &lt;test&gt;</title>"), std::string::npos);
  EXPECT_EQ(count(r.html, "<svg"), 4u);
  EXPECT_EQ(r.html.find("<script"), std::string::npos);
  EXPECT_EQ(r.html.find("http://"), r.html.find("http://www.w3.org/2000/svg")) << "no external resources";
  EXPECT_EQ(r.html.find("https://"), std::string::npos);
  // ppl vs bytes: 4 points; front = f32 (lowest ppl), gptq4 (smallest, better than rtn4); bad8 and rtn4 dominated.
  std::string svg = figure_svg(r.figures[0]);
  EXPECT_EQ(count(svg, "<circle"), 4u);
  EXPECT_EQ(count(svg, "fill=\"#d62728\""), 2u + 0u) << svg;  // front points (the legend is a line)
  EXPECT_GE(count(svg, "stroke-dasharray"), 2u);  // front segment + legend
  EXPECT_EQ(count(r.html, "<tr class=\"front\">"), 2u);
  // Heat map: 3 layers × 7 projections, 9 with data.
  std::string hm = figure_svg(r.figures[3]);
  EXPECT_EQ(count(hm, "fill=\"#dddddd\""), 12u);

  auto pngs = write_report(r, dir + "/report.html", dir + "/plots");
  ASSERT_EQ(pngs.size(), 4u);
  for (size_t i = 0; i < pngs.size(); i++) {
    Canvas c = decode_png(read_file(pngs[i]));
    EXPECT_EQ(c.width(), 2 * r.figures[i].width);
    EXPECT_EQ(c.height(), 2 * r.figures[i].height);
    auto [colours, share] = ink(c);
    EXPECT_GE(colours, 4u) << pngs[i];
    EXPECT_GT(share, 0.01) << pngs[i] << ": the plot is drawn";
    EXPECT_LT(share, 0.9) << pngs[i];
  }
  EXPECT_TRUE(fs::exists(dir + "/report.html"));
}

// Runs with a "group" get a fourth scatter with one Pareto front per group, computed within each group: a point
// beaten only by the other group stays on its own group's front; the table shows group and file bits/weight.
TEST(Report, GroupedRunsGetOneParetoFrontPerGroup) {
  std::string dir = test::temp_dir("report_groups");
  struct R {
    const char *model, *group;
    double ppl, fbpw;
  };
  std::vector<ReportRun> runs;
  for (R r : {R{"/g/a8", "lmpress", 4.22, 8.5}, R{"/g/a4", "lmpress", 4.40, 4.6}, R{"/g/a4bad", "lmpress", 4.60, 5.0},
              R{"/g/b8", "llama.cpp", 4.25, 9.0}, R{"/g/b5", "llama.cpp", 4.45, 7.0}}) {
    std::string p = dir + "/" + fs::path(r.model).filename().string() + ".json";
    write_json(p, {{"model", r.model}, {"group", r.group}, {"ppl", r.ppl}, {"file_bits_per_weight", r.fbpw}, {"bytes", 1000.0}});
    add_run_input(runs, p);
  }
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_EQ(runs[3].group, "llama.cpp");
  EXPECT_DOUBLE_EQ(*runs[3].file_bits_per_weight, 9.0);
  Report r = build_report(runs, "groups");
  ASSERT_EQ(r.figures.size(), 4u);
  EXPECT_EQ(r.figures[3].id, "ppl_vs_bits_by_group");
  std::string svg = figure_svg(r.figures[3]);
  EXPECT_EQ(count(svg, "<circle"), 5u);
  // Fronts: lmpress {a8, a4} (a4bad dominated by a4), llama.cpp {b8, b5} (both dominated by lmpress points, but
  // not by their own group): 4 front points in the two series colours, 1 faded point.
  EXPECT_EQ(count(svg, "r=\"6\""), 4u) << svg;
  EXPECT_EQ(count(svg, "r=\"4\""), 1u) << svg;
  EXPECT_NE(svg.find("lmpress: Pareto front"), std::string::npos);
  EXPECT_NE(svg.find("llama.cpp: Pareto front"), std::string::npos);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 4u) << "one segment + one legend line per group";
  EXPECT_NE(r.html.find("<td class=\"name\">llama.cpp</td><td>9.000</td>"), std::string::npos);
}

TEST(Report, PngRoundTripsAndTextIsDrawn) {
  Canvas c(40, 20);
  c.text(2, 12, "Ab1", 1, {0, 0, 0});
  c.line(0, 19, 39, 19, {255, 0, 0});
  Canvas d = decode_png(encode_png(c));
  ASSERT_EQ(d.width(), 40);
  size_t dark = 0;
  for (int y = 0; y < 20; y++)
    for (int x = 0; x < 40; x++) {
      EXPECT_EQ(d.at(x, y).r, c.at(x, y).r);
      dark += d.at(x, y).r == 0 && d.at(x, y).g == 0;
    }
  EXPECT_GT(dark, 20u);  // "Ab1" in the 5×8 font
  EXPECT_EQ(d.at(20, 19).r, 255);
  EXPECT_EQ(d.at(20, 19).g, 0);
  EXPECT_EQ(text_width("Ab1", 2), 36);
}

TEST(Report, ModelDirectoryIsCountedLikeInspect) {
  std::string dir = test::temp_dir("report_model");
  test::write_tiny_model(dir, {});
  std::vector<ReportRun> runs;
  add_run_input(runs, dir);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_DOUBLE_EQ(*runs[0].bits_per_weight, 32.0);
  EXPECT_EQ(runs[0].tensor_bits.size(), 2u * 7u);
  EXPECT_THROW(add_run_input(runs, dir + "/config.json.missing"), Error);
}

TEST(Report, ChromiumLoadsThePageWithoutConsoleErrors) {
  std::string chromium;
  for (const char* c : {"chromium", "chromium-browser", "google-chrome"})
    if (std::system(fmt::format("command -v {} >/dev/null 2>&1", c).c_str()) == 0) {
      chromium = c;
      break;
    }
  if (chromium.empty()) GTEST_SKIP() << "chromium not on PATH (apt-get install chromium): headless check skipped";
  std::string dir = test::temp_dir("report_chromium");
  std::vector<ReportRun> runs;
  for (const auto& p : synthetic_inputs(dir)) add_run_input(runs, p);
  write_report(build_report(runs, "chromium check"), dir + "/report.html", "");
  std::string log = dir + "/chromium.log", shot = dir + "/shot.png";
  std::string cmd = fmt::format(
      "timeout 120 {} --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run "
      "--user-data-dir={}/profile --enable-logging=stderr --v=0 --window-size=1200,1600 --screenshot={} "
      "file://{}/report.html >{} 2>&1",
      chromium, dir, shot, dir, log);
  int rc = std::system(cmd.c_str());
  std::string out = read_file(log);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(fs::exists(shot) && fs::file_size(shot) > 1000) << out;
  // Console messages are logged as "CONSOLE(line)" / "Uncaught"; the page has no scripts, so none at all.
  EXPECT_EQ(out.find("CONSOLE"), std::string::npos) << out;
  EXPECT_EQ(out.find("Uncaught"), std::string::npos) << out;
  EXPECT_EQ(out.find("Failed to load resource"), std::string::npos) << out;
}

#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/mmap_file.h"
#include "model/model.h"

namespace lmp {

namespace fs = std::filesystem;

namespace {

// The shallowest value under `key` anywhere in j (breadth first), or null.
const nlohmann::json* find_key(const nlohmann::json& j, const std::string& key) {
  std::deque<const nlohmann::json*> q{&j};
  while (!q.empty()) {
    const nlohmann::json* x = q.front();
    q.pop_front();
    if (x->is_object()) {
      auto it = x->find(key);
      if (it != x->end()) return &*it;
      for (const auto& [k, v] : x->items())
        if (v.is_object()) q.push_back(&v);
    }
  }
  return nullptr;
}

std::optional<double> number(const nlohmann::json& j, const std::string& key) {
  const nlohmann::json* v = find_key(j, key);
  if (v && v->is_number()) return v->get<double>();
  return std::nullopt;
}

std::string model_key(const nlohmann::json& j) {
  for (const char* k : {"model", "dir", "output", "out"}) {
    auto it = j.find(k);
    if (it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

std::string canonical(const std::string& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(fs::path(p), ec);
  return ec ? p : c.string();
}

std::string base_name(const std::string& p) {
  fs::path x(p);
  while (!x.empty() && x.filename().empty()) x = x.parent_path();  // trailing '/'
  return x.filename().string();
}

ReportRun& run_for(std::vector<ReportRun>& runs, const std::string& key, const std::string& name) {
  for (auto& r : runs)
    if (r.key == key) return r;
  runs.push_back({});
  runs.back().key = key;
  runs.back().name = name;
  return runs.back();
}

}  // namespace

void absorb_json(ReportRun& r, const nlohmann::json& j) {
  if (auto v = number(j, "ppl")) r.ppl = v;
  if (auto v = number(j, "bytes")) r.bytes = v;
  if (auto v = number(j, "params")) r.params = v;
  if (auto v = number(j, "linear_bits_per_weight")) r.bits_per_weight = v;
  if (auto v = number(j, "file_bits_per_weight")) r.file_bits_per_weight = v;
  if (auto g = j.find("group"); g != j.end() && g->is_string()) r.group = g->get<std::string>();
  if (auto v = number(j, "decode_tokens_per_s")) r.decode_tokens_per_s = v;
  if (const auto* p = find_key(j, "prefill_tokens_per_s")) {
    if (p->is_number()) r.prefill_tokens_per_s = p->get<double>();
    if (p->is_object()) {  // {"128": x, "512": y}: the longest prefill
      long best = -1;
      for (const auto& [k, v] : p->items()) {
        long n = std::atol(k.c_str());
        if (v.is_number() && n > best) best = n, r.prefill_tokens_per_s = v.get<double>();
      }
    }
  }
  if (const auto* t = find_key(j, "tasks"); t && t->is_object())
    for (const auto& [name, res] : t->items())
      if (res.is_object() && res.contains("acc") && res["acc"].is_number()) r.task_acc[name] = res["acc"].get<double>();
  if (const auto* t = find_key(j, "tensors"); t && t->is_array()) {
    r.tensor_bits.clear();
    for (const auto& x : *t)
      if (x.is_object() && x.contains("name") && x.contains("bits_per_weight") && x["bits_per_weight"].is_number())
        r.tensor_bits.emplace_back(x["name"].get<std::string>(), x["bits_per_weight"].get<double>());
  }
}

void add_run_input(std::vector<ReportRun>& runs, const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    check(fs::exists(fs::path(path) / "config.json"), "{}: a directory without config.json (not a model)", path);
    auto m = load_model(path);
    nlohmann::json tensors = nlohmann::json::array();
    for (int l = 0; l < m->cfg.n_layers; l++)
      for (int k = 0; k < kLinearsPerBlock; k++)
        tensors.push_back({{"name", linear_name(l, LinearKind(k))},
                           {"bits_per_weight", m->blocks[size_t(l)].lin[size_t(k)].w->bits_per_weight()}});
    nlohmann::json j = {{"params", m->n_params()},
                        {"bytes", m->n_bytes()},
                        {"linear_bits_per_weight", m->linear_bits_per_weight()},
                        {"tensors", tensors}};
    ReportRun& r = run_for(runs, canonical(path), base_name(path));
    r.sources.push_back(path);
    absorb_json(r, j);
    return;
  }
  std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a JSON file or model directory ({})", path, e.what());
  }
  check(j.is_object(), "{}: JSON is not an object (want the --json output of an lmpress command)", path);
  std::string mk = model_key(j);
  std::string key = mk.empty() ? canonical(path) : canonical(mk);
  std::string name = mk.empty() ? fs::path(path).stem().string() : base_name(mk);
  ReportRun& r = run_for(runs, key, name);
  r.sources.push_back(path);
  absorb_json(r, j);
}

namespace {

const char* kCss = R"(
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1440px;
       color: #222; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
p.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; }
td.name, th.name { text-align: left; }
td.src { text-align: left; color: #777; font-size: 11px; white-space: normal; max-width: 260px; }
tr.front td.name::before { content: "\2605  "; color: #d62728; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid #e5e5e5; padding: 6px; background: #fff; flex: 0 1 600px; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 12px; color: #555; max-width: 680px; padding: 4px; }
.note { font-size: 12px; color: #666; }
)";

std::string fmt_opt(const std::optional<double>& v, const char* f) {
  return v ? fmt::format(fmt::runtime(f), *v) : "&ndash;";
}

// Layer index and projection column of "model.layers.L.<proj>", or false.
bool split_tensor_name(const std::string& name, int& layer, int& col) {
  const std::string pre = "model.layers.";
  if (name.rfind(pre, 0) != 0) return false;
  size_t dot = name.find('.', pre.size());
  if (dot == std::string::npos) return false;
  layer = std::atoi(name.substr(pre.size(), dot - pre.size()).c_str());
  std::string rest = name.substr(dot + 1);
  for (int k = 0; k < kLinearsPerBlock; k++)
    if (rest == kLinearNames[size_t(k)]) return col = k, true;
  return false;
}

std::optional<Figure> layer_heatmap(const ReportRun& r, int index) {
  int layers = 0;
  for (const auto& [n, b] : r.tensor_bits) {
    int l, c;
    if (split_tensor_name(n, l, c)) layers = std::max(layers, l + 1);
  }
  if (layers == 0) return std::nullopt;
  HeatSpec h;
  h.id = fmt::format("layer_bits_{}", index);
  h.title = "bits/weight per projection: " + r.name;
  h.value_label = "bits/weight";
  h.cols = {"q", "k", "v", "o", "gate", "up", "down"};
  for (int l = 0; l < layers; l++) h.rows.push_back(fmt::format("layer {}", l));
  h.values.assign(size_t(layers) * kLinearsPerBlock, NAN);
  for (const auto& [n, b] : r.tensor_bits) {
    int l, c;
    if (split_tensor_name(n, l, c)) h.values[size_t(l) * kLinearsPerBlock + size_t(c)] = b;
  }
  return heatmap_figure(h);
}

// ppl vs bits/weight with one Pareto front per group (file bits/weight where the runs have it).
ScatterSpec group_fronts(const std::vector<ReportRun>& runs) {
  ScatterSpec s;
  s.id = "ppl_vs_bits_by_group";
  s.title = "Perplexity vs bits per weight, one Pareto front per group";
  s.xlabel = "bits per weight (whole file where known)";
  s.ylabel = "perplexity";
  s.front_legend = "Pareto front";
  for (const auto& r : runs) {
    auto x = r.file_bits_per_weight ? r.file_bits_per_weight : r.bits_per_weight;
    if (!r.ppl || !x) continue;
    const std::string g = r.group.empty() ? "(no group)" : r.group;
    auto it = std::find(s.series.begin(), s.series.end(), g);
    if (it == s.series.end()) it = s.series.insert(s.series.end(), g);
    ScatterPoint p{*x, *r.ppl, r.name, false};
    p.series = int(it - s.series.begin());
    s.points.push_back(p);
  }
  mark_pareto_front(s.points, false);
  double lo = INFINITY, hi = 0;
  for (const auto& p : s.points) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
  s.logy = hi > 8 * lo;
  return s;
}

}  // namespace

Report build_report(const std::vector<ReportRun>& runs, const std::string& title) {
  Report rep;
  // Scatter data.
  auto spec = [](const char* id, const char* title, const char* xl, const char* yl, AxisFormat xf) {
    ScatterSpec s;
    s.id = id, s.title = title, s.xlabel = xl, s.ylabel = yl, s.xfmt = xf;
    return s;
  };
  ScatterSpec pb = spec("ppl_vs_bytes", "Perplexity vs model size", "model bytes", "perplexity", AxisFormat::Bytes);
  ScatterSpec pw = spec("ppl_vs_bits", "Perplexity vs bits per weight (projections)", "bits per weight",
                        "perplexity", AxisFormat::Plain);
  ScatterSpec tb = spec("tokens_per_s_vs_bytes", "Decode speed vs model size", "model bytes", "decode tokens/s",
                        AxisFormat::Bytes);
  for (const auto& r : runs) {
    if (r.ppl && r.bytes) pb.points.push_back({*r.bytes, *r.ppl, r.name, false});
    if (r.ppl && r.bits_per_weight) pw.points.push_back({*r.bits_per_weight, *r.ppl, r.name, false});
    if (r.decode_tokens_per_s && r.bytes) tb.points.push_back({*r.bytes, *r.decode_tokens_per_s, r.name, false});
  }
  mark_pareto_front(pb.points, false);
  mark_pareto_front(pw.points, false);
  mark_pareto_front(tb.points, true);
  std::set<std::string> front;
  for (const auto& p : pb.points)
    if (p.front) front.insert(p.label);
  for (auto* s : {&pb, &pw}) {
    double lo = INFINITY, hi = 0;
    for (const auto& p : s->points) lo = std::min(lo, p.y), hi = std::max(hi, p.y);
    s->logy = hi > 8 * lo;
    s->front_legend = "Pareto front";
  }
  tb.front_legend = "Pareto front";
  for (auto* s : {&pb, &pw, &tb}) rep.figures.push_back(scatter_figure(*s));
  const bool grouped = std::any_of(runs.begin(), runs.end(), [](const ReportRun& r) { return !r.group.empty(); });
  if (grouped) rep.figures.push_back(scatter_figure(group_fronts(runs)));
  int hm = 0;
  for (const auto& r : runs)
    if (hm < 8)
      if (auto f = layer_heatmap(r, hm)) rep.figures.push_back(*f), hm++;

  // Task columns: every task any run has.
  std::set<std::string> tasks;
  for (const auto& r : runs)
    for (const auto& [t, a] : r.task_acc) tasks.insert(t);

  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + html_escape(title) +
                  "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n";
  h += "<h1>" + html_escape(title) + "</h1>\n";
  h += fmt::format("<p class=\"sub\">{} run{} &middot; generated by lmpress report</p>\n", runs.size(),
                   runs.size() == 1 ? "" : "s");
  h += "<h2>Runs</h2>\n<table>\n<tr><th class=\"name\">run</th>";
  if (grouped) h += "<th class=\"name\">group</th><th>file bits/weight</th>";
  h += "<th>params</th><th>bytes</th><th>bits/weight</th><th>ppl</th><th>decode tok/s</th><th>prefill tok/s</th>";
  for (const auto& t : tasks) h += "<th>" + html_escape(t) + " acc</th>";
  h += "<th class=\"name\">inputs</th></tr>\n";
  for (const auto& r : runs) {
    h += fmt::format("<tr{}><td class=\"name\">{}</td>", front.count(r.name) ? " class=\"front\"" : "", html_escape(r.name));
    if (grouped) h += "<td class=\"name\">" + html_escape(r.group) + "</td><td>" + fmt_opt(r.file_bits_per_weight, "{:.3f}") + "</td>";
    h += "<td>" + fmt_opt(r.params, "{:.0f}") + "</td>";
    h += "<td>" + (r.bytes ? html_escape(format_bytes(*r.bytes)) : std::string("&ndash;")) + "</td>";
    h += "<td>" + fmt_opt(r.bits_per_weight, "{:.3f}") + "</td><td>" + fmt_opt(r.ppl, "{:.4f}") + "</td>";
    h += "<td>" + fmt_opt(r.decode_tokens_per_s, "{:.1f}") + "</td><td>" + fmt_opt(r.prefill_tokens_per_s, "{:.1f}") + "</td>";
    for (const auto& t : tasks) {
      auto it = r.task_acc.find(t);
      h += "<td>" + (it == r.task_acc.end() ? std::string("&ndash;") : fmt::format("{:.4f}", it->second)) + "</td>";
    }
    std::string src;
    for (const auto& s : r.sources) src += (src.empty() ? "" : "<br>") + html_escape(s);
    h += "<td class=\"src\">" + src + "</td></tr>\n";
  }
  h += "</table>\n<p class=\"note\">&#9733; marks runs on the Pareto front of perplexity vs bytes (no other run "
       "is both smaller and lower in perplexity).</p>\n";
  h += "<h2>Trade-offs</h2>\n<div class=\"figs\">\n";
  const char* captions[] = {
      "Each point is a run; red points and the dashed line form the Pareto front (lower perplexity, fewer bytes).",
      "Bits per weight over the projections (q/k/v/o/gate/up/down), the part compression acts on.",
      "Decode tokens/s from lmpress bench; the front keeps runs that no smaller run beats in speed.",
      "One colour per group; each group's front (dashed) keeps its runs that no smaller run of the same group beats "
      "in perplexity. Bits per weight count the whole weights file where the run says so (file_bits_per_weight)."};
  const size_t nscatter = grouped ? 4 : 3;
  for (size_t i = 0; i < rep.figures.size(); i++) {
    if (i == nscatter) h += "</div>\n<h2>Per-layer bits/weight</h2>\n<div class=\"figs\">\n";
    h += "<figure>\n" + figure_svg(rep.figures[i]);
    if (i < nscatter) h += std::string("<figcaption>") + captions[i] + "</figcaption>\n";
    h += "</figure>\n";
  }
  h += "</div>\n";
  if (hm == 0) h += "<p class=\"note\">No per-tensor data in the inputs (give model directories or inspect --json).</p>\n";
  h += "</body>\n</html>\n";
  rep.html = std::move(h);
  return rep;
}

std::vector<std::string> write_report(const Report& r, const std::string& html_path, const std::string& png_dir) {
  write_file_atomic(html_path, r.html.data(), r.html.size());
  std::vector<std::string> pngs;
  if (png_dir.empty()) return pngs;
  std::error_code ec;
  fs::create_directories(png_dir, ec);
  check(!ec, "{}: cannot create directory ({})", png_dir, ec.message());
  for (const auto& f : r.figures) {
    std::string p = (fs::path(png_dir) / (f.id + ".png")).string();
    write_png(p, rasterize(f, 2));
    pngs.push_back(p);
  }
  return pngs;
}

}  // namespace lmp

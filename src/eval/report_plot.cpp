#include "eval/report_plot.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace lmp {

std::string html_escape(const std::string& s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::abs(b) >= 1024 && u < 4) b /= 1024, u++;
  if (u == 0) return fmt::format("{:.0f} B", b);
  int digits = std::abs(b) < 10 ? 2 : std::abs(b) < 100 ? 1 : 0;
  return fmt::format("{:.{}f} {}", b, digits, units[u]);
}

void mark_pareto_front(std::vector<ScatterPoint>& pts, bool maximize_y) {
  for (auto& p : pts) {
    p.front = true;
    for (const auto& q : pts) {
      if (q.series != p.series) continue;
      bool y_no_worse = maximize_y ? q.y >= p.y : q.y <= p.y;
      bool y_better = maximize_y ? q.y > p.y : q.y < p.y;
      if (q.x <= p.x && y_no_worse && (q.x < p.x || y_better)) {
        p.front = false;
        break;
      }
    }
  }
}

namespace {

const char* kInk = "#222222";
const char* kGrid = "#e3e3e3";
const char* kPoint = "#1f77b4";
const char* kFront = "#d62728";
// Series colours (point, front): blue/red for one series; then one hue per named series.
const char* kSeriesColor[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
constexpr int kSeriesColors = 6;

Prim line(double x, double y, double x2, double y2, const std::string& color, double w = 1, bool dashed = false) {
  Prim p;
  p.kind = Prim::Line, p.x = x, p.y = y, p.x2 = x2, p.y2 = y2, p.color = color, p.width = w, p.dashed = dashed;
  return p;
}
Prim text(double x, double y, const std::string& s, double size, Anchor a = Anchor::Start,
          const std::string& color = kInk, bool vertical = false) {
  Prim p;
  p.kind = Prim::Text, p.x = x, p.y = y, p.text = s, p.size = size, p.anchor = a, p.color = color;
  p.vertical = vertical;
  return p;
}
Prim rect(double x, double y, double w, double h, const std::string& fill, const std::string& title = "") {
  Prim p;
  p.kind = Prim::Rect, p.x = x, p.y = y, p.x2 = w, p.y2 = h, p.fill = fill, p.color = "", p.title = title;
  return p;
}
Prim circle(double cx, double cy, double r, const std::string& fill, const std::string& title) {
  Prim p;
  p.kind = Prim::Circle, p.x = cx, p.y = cy, p.x2 = r, p.fill = fill, p.color = "#ffffff", p.title = title;
  return p;
}

std::string tick_label(double v, AxisFormat f) {
  if (f == AxisFormat::Bytes) return format_bytes(v);
  if (v != 0 && (std::abs(v) >= 1e5 || std::abs(v) < 1e-3)) return fmt::format("{:.2g}", v);
  return fmt::format("{:.4g}", v);
}

// An axis mapping data values to pixels [p0, p1], with tick positions.
struct Axis {
  double lo = 0, hi = 1;  // in transformed units (log10 when log)
  bool log = false;
  double unit = 1;            // linear axes: ticks are nice numbers of this unit (1024^k for bytes)
  std::vector<double> ticks;  // data values
  double t(double v) const { return log ? std::log10(v) : v / unit; }
  double map(double v, double p0, double p1) const { return p0 + (t(v) - lo) / (hi - lo) * (p1 - p0); }
};

Axis make_axis(std::vector<double> vals, bool log, AxisFormat f = AxisFormat::Plain) {
  Axis a;
  a.log = log && std::all_of(vals.begin(), vals.end(), [](double v) { return v > 0; });
  if (f == AxisFormat::Bytes && !a.log) {
    double mx = 0;
    for (double v : vals) mx = std::max(mx, std::abs(v));
    while (mx >= 1024 * a.unit) a.unit *= 1024;
  }
  for (auto& v : vals) v = a.t(v);
  double lo = *std::min_element(vals.begin(), vals.end()), hi = *std::max_element(vals.begin(), vals.end());
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    double d = a.log ? 0.3 : std::max(std::abs(hi) * 0.1, 1e-9);
    lo -= d, hi += d;
  }
  double pad = (hi - lo) * 0.08;
  a.lo = lo - pad, a.hi = hi + pad;
  if (a.log) {
    for (int k = int(std::floor(a.lo)) - 1; k <= int(std::ceil(a.hi)); k++)
      for (double m : {1.0, 2.0, 5.0}) {
        double v = m * std::pow(10.0, k);
        if (std::log10(v) >= a.lo && std::log10(v) <= a.hi) a.ticks.push_back(v);
      }
    if (a.ticks.size() > 8) {  // keep the decades only
      std::vector<double> d;
      for (double v : a.ticks)
        if (std::abs(std::log10(v) - std::round(std::log10(v))) < 1e-9) d.push_back(v);
      if (d.size() >= 2) a.ticks = d;
    }
    if (a.ticks.size() < 2) a.ticks = {std::pow(10.0, lo), std::pow(10.0, hi)};
  } else {
    double raw = (a.hi - a.lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw)));
    double step = mag * (raw / mag < 1.5 ? 1 : raw / mag < 3.5 ? 2 : raw / mag < 7.5 ? 5 : 10);
    for (double v = std::ceil(a.lo / step) * step; v <= a.hi + 1e-9 * step; v += step)
      a.ticks.push_back((std::abs(v) < 1e-12 * step ? 0 : v) * a.unit);
  }
  return a;
}

}  // namespace

Figure scatter_figure(const ScatterSpec& s) {
  Figure f;
  f.id = s.id, f.title = s.title;
  f.width = 680, f.height = 440;
  const double L = 86, R = f.width - 24.0, T = 44, B = f.height - 56.0;
  f.prims.push_back(rect(0, 0, f.width, f.height, "#ffffff"));
  f.prims.push_back(text(f.width / 2.0, 24, s.title, 15, Anchor::Middle));
  if (s.points.empty()) {
    f.prims.push_back(text(f.width / 2.0, f.height / 2.0, "no runs with these values", 13, Anchor::Middle, "#888888"));
    return f;
  }
  std::vector<double> xs, ys;
  for (const auto& p : s.points) xs.push_back(p.x), ys.push_back(p.y);
  Axis ax = make_axis(xs, s.logx, s.xfmt), ay = make_axis(ys, s.logy);
  auto X = [&](double v) { return ax.map(v, L, R); };
  auto Y = [&](double v) { return ay.map(v, B, T); };
  for (double v : ax.ticks) {
    f.prims.push_back(line(X(v), T, X(v), B, kGrid));
    f.prims.push_back(line(X(v), B, X(v), B + 5, kInk));
    f.prims.push_back(text(X(v), B + 19, tick_label(v, s.xfmt), 11, Anchor::Middle));
  }
  for (double v : ay.ticks) {
    f.prims.push_back(line(L, Y(v), R, Y(v), kGrid));
    f.prims.push_back(line(L - 5, Y(v), L, Y(v), kInk));
    f.prims.push_back(text(L - 8, Y(v) + 4, tick_label(v, AxisFormat::Plain), 11, Anchor::End));
  }
  f.prims.push_back(line(L, B, R, B, kInk, 1.5));
  f.prims.push_back(line(L, T, L, B, kInk, 1.5));
  f.prims.push_back(text((L + R) / 2, f.height - 12.0, s.xlabel + (ax.log ? " (log scale)" : ""), 12, Anchor::Middle));
  f.prims.push_back(text(20, (T + B) / 2, s.ylabel + (ay.log ? " (log scale)" : ""), 12, Anchor::Middle, kInk, true));
  const bool multi = !s.series.empty();
  auto point_color = [&](const ScatterPoint& p) {
    if (multi) return std::string(kSeriesColor[p.series % kSeriesColors]);
    return std::string(p.front ? kFront : kPoint);
  };
  // Pareto front line(s) through the front points in x order, one per series.
  const int nseries = multi ? int(s.series.size()) : 1;
  for (int k = 0; k < nseries && !s.front_legend.empty(); k++) {
    std::vector<ScatterPoint> front;
    for (const auto& p : s.points)
      if (p.front && (!multi || p.series == k)) front.push_back(p);
    std::sort(front.begin(), front.end(), [](auto& a, auto& b) { return a.x < b.x; });
    const std::string col = multi ? kSeriesColor[k % kSeriesColors] : kFront;
    for (size_t i = 1; i < front.size(); i++)
      f.prims.push_back(line(X(front[i - 1].x), Y(front[i - 1].y), X(front[i].x), Y(front[i].y), col, 2, true));
    const double ly = T + 8 + 16 * k;
    const std::string legend = multi ? s.series[size_t(k)] + ": " + s.front_legend : s.front_legend;
    const double lx = multi ? R - 200 : R - 180;
    f.prims.push_back(line(lx, ly, lx + 24, ly, col, 2, true));
    f.prims.push_back(text(lx + 30, ly + 4, legend, 11));
  }
  for (const auto& p : s.points) {
    std::string tip = fmt::format("{}: x {}, y {:.5g}", p.label, tick_label(p.x, s.xfmt), p.y);
    std::string fill = point_color(p);
    if (multi && !p.front) fill = fill == kSeriesColor[0] ? "#f0a0a0" : fill == kSeriesColor[1] ? "#9ec5e8" : fill;
    f.prims.push_back(circle(X(p.x), Y(p.y), p.front ? 6 : (multi ? 4 : 5), fill, tip));
    if (multi && !p.front) continue;  // many points: label the fronts only
    std::string lab = p.label.size() > 22 ? p.label.substr(0, 21) + "~" : p.label;
    bool left = X(p.x) > R - 150;  // keep labels inside the plot
    f.prims.push_back(text(X(p.x) + (left ? -9 : 9), Y(p.y) - 7, lab, 11, left ? Anchor::End : Anchor::Start, "#444444"));
  }
  return f;
}

namespace {

// Perceptually ordered colour ramp (dark blue → teal → yellow), t in [0, 1].
std::string ramp(double t) {
  static const double stops[][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::clamp(t, 0.0, 1.0) * 4;
  int i = std::min(3, int(t));
  double u = t - i;
  int c[3];
  for (int k = 0; k < 3; k++) c[k] = int(std::lround(stops[i][k] + u * (stops[i + 1][k] - stops[i][k])));
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

}  // namespace

Figure heatmap_figure(const HeatSpec& s) {
  Figure f;
  f.id = s.id, f.title = s.title;
  const int nr = int(s.rows.size()), nc = int(s.cols.size());
  const double cw = 64, ch = std::clamp(520.0 / std::max(1, nr), 8.0, 26.0);
  const double L = 70, T = 64;
  f.width = int(L + nc * cw + 130);
  f.height = int(T + nr * ch + 30);
  f.prims.push_back(rect(0, 0, f.width, f.height, "#ffffff"));
  f.prims.push_back(text(8, 24, s.title, 15));
  double lo = INFINITY, hi = -INFINITY;
  for (double v : s.values)
    if (!std::isnan(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  if (!(lo <= hi)) lo = 0, hi = 1;
  double span = hi - lo > 1e-12 ? hi - lo : 1;
  for (int c = 0; c < nc; c++) f.prims.push_back(text(L + (c + 0.5) * cw, T - 8, s.cols[size_t(c)], 11, Anchor::Middle));
  for (int r = 0; r < nr; r++) {
    if (ch >= 11 || r % int(std::ceil(11 / ch)) == 0)
      f.prims.push_back(text(L - 8, T + (r + 0.5) * ch + 4, s.rows[size_t(r)], 11, Anchor::End));
    for (int c = 0; c < nc; c++) {
      double v = s.values[size_t(r) * nc + c];
      std::string tip = fmt::format("{} {}: {}", s.rows[size_t(r)], s.cols[size_t(c)],
                                    std::isnan(v) ? std::string("n/a") : fmt::format("{:.3f} {}", v, s.value_label));
      f.prims.push_back(rect(L + c * cw, T + r * ch, cw - 1, ch - 1, std::isnan(v) ? "#dddddd" : ramp((v - lo) / span), tip));
      if (ch >= 16 && !std::isnan(v))
        f.prims.push_back(text(L + (c + 0.5) * cw, T + (r + 0.5) * ch + 4, fmt::format("{:.2f}", v), 10,
                               Anchor::Middle, (v - lo) / span > 0.6 ? "#000000" : "#ffffff"));
    }
  }
  // Legend: the colour ramp from lo (bottom) to hi (top).
  const double lx = L + nc * cw + 24, lh = std::min(200.0, nr * ch);
  for (int i = 0; i < 40; i++)
    f.prims.push_back(rect(lx, T + lh * (39 - i) / 40.0, 16, lh / 40.0 + 0.5, ramp(i / 39.0)));
  f.prims.push_back(text(lx + 22, T + 10, fmt::format("{:.3g}", hi), 11));
  f.prims.push_back(text(lx + 22, T + lh, fmt::format("{:.3g}", lo), 11));
  f.prims.push_back(text(lx, T + lh + 18, s.value_label, 11));
  return f;
}

std::string figure_svg(const Figure& f) {
  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"plot\" id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "role=\"img\" aria-label=\"{}\" font-family=\"DejaVu Sans Mono, monospace\">\n",
      html_escape(f.id), f.width, f.height, f.width, f.height, html_escape(f.title));
  for (const Prim& p : f.prims) {
    std::string tip = p.title.empty() ? "" : "<title>" + html_escape(p.title) + "</title>";
    switch (p.kind) {
      case Prim::Line:
        o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n",
                         p.x, p.y, p.x2, p.y2, p.color, p.width, p.dashed ? " stroke-dasharray=\"6 4\"" : "");
        break;
      case Prim::Rect:
        o += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\">{}</rect>\n", p.x,
                         p.y, p.x2, p.y2, p.fill, tip);
        break;
      case Prim::Circle:
        o += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\" stroke=\"{}\">{}</circle>\n", p.x, p.y,
                         p.x2, p.fill, p.color, tip);
        break;
      case Prim::Text: {
        const char* anchor = p.anchor == Anchor::Start ? "start" : p.anchor == Anchor::Middle ? "middle" : "end";
        std::string rot = p.vertical ? fmt::format(" transform=\"rotate(-90 {:.1f} {:.1f})\"", p.x, p.y) : "";
        o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" fill=\"{}\" text-anchor=\"{}\"{}>{}</text>\n", p.x,
                         p.y, p.size, p.color, anchor, rot, html_escape(p.text));
        break;
      }
    }
  }
  return o + "</svg>\n";
}

Canvas rasterize(const Figure& f, int scale) {
  Canvas c(f.width * scale, f.height * scale);
  const double s = scale;
  for (const Prim& p : f.prims) {
    switch (p.kind) {
      case Prim::Line:
        c.line(p.x * s, p.y * s, p.x2 * s, p.y2 * s, parse_color(p.color), p.width * s, p.dashed);
        break;
      case Prim::Rect:
        c.fill_rect(p.x * s, p.y * s, p.x2 * s, p.y2 * s, parse_color(p.fill));
        break;
      case Prim::Circle:
        c.disc(p.x * s, p.y * s, (p.x2 + 1) * s, parse_color(p.color));
        c.disc(p.x * s, p.y * s, p.x2 * s, parse_color(p.fill));
        break;
      case Prim::Text: {
        int gs = std::max(1, int(std::lround(p.size * s / 12.0)));
        c.text(p.x * s, p.y * s, p.text, gs, parse_color(p.color), p.anchor, p.vertical);
        break;
      }
    }
  }
  return c;
}

}  // namespace lmp

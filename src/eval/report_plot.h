// Plots of the report as a list of drawing primitives in pixel coordinates (one layout), rendered by two
// back ends: inline SVG for the HTML page and a raster Canvas for the PNG files (eval/png.h).
#pragma once
#include <string>
#include <vector>

#include "eval/png.h"

namespace lmp {

struct Prim {
  enum Kind { Line, Circle, Rect, Text } kind = Line;
  double x = 0, y = 0, x2 = 0, y2 = 0;  // Line: (x,y)-(x2,y2); Rect: x,y, w=x2, h=y2; Circle: cx=x, cy=y, r=x2
  std::string color = "#000000";         // stroke / text colour
  std::string fill;                      // Rect/Circle fill ("" = none)
  double width = 1;
  bool dashed = false;
  std::string text;  // Text
  double size = 12;  // Text: font size in px
  Anchor anchor = Anchor::Start;
  bool vertical = false;
  std::string title;  // tooltip (SVG <title>)
};

struct Figure {
  std::string id, title;  // id: file-name stem of the PNG
  int width = 640, height = 420;
  std::vector<Prim> prims;
};

enum class AxisFormat { Plain, Bytes };

struct ScatterPoint {
  double x = 0, y = 0;
  std::string label;
  bool front = false;  // on the Pareto front: highlighted and joined by the front line
  int series = 0;      // index into ScatterSpec::series (0 when there is one series)
};

struct ScatterSpec {
  std::string id, title, xlabel, ylabel;
  std::vector<ScatterPoint> points;
  AxisFormat xfmt = AxisFormat::Plain;
  bool logx = false, logy = false;
  std::string front_legend;  // legend text of the front line ("" = no front)
  // Named series (e.g. "lmpress", "llama.cpp"): each drawn in its own colour with its own Pareto front and a
  // legend entry "<name>: <front_legend>". Empty = one series in the default colours.
  std::vector<std::string> series;
};
Figure scatter_figure(const ScatterSpec& s);

struct HeatSpec {
  std::string id, title, value_label;
  std::vector<std::string> rows, cols;
  std::vector<double> values;  // rows × cols, NaN = no data
};
Figure heatmap_figure(const HeatSpec& s);

// Pareto front of points minimising x and minimising (or maximising) y: flags the points no other point
// of the same series beats on both.
void mark_pareto_front(std::vector<ScatterPoint>& pts, bool maximize_y);

std::string figure_svg(const Figure& f);
Canvas rasterize(const Figure& f, int scale);

// "1.5 MiB", "12.3 KiB", "980 B"
std::string format_bytes(double b);
// Escapes &, <, >, " for HTML/SVG text and attributes.
std::string html_escape(const std::string& s);

}  // namespace lmp

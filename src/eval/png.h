// A tiny RGB raster (Canvas) with the few drawing operations the report's plots need -- filled rectangles,
// thick lines, filled discs, and text in a built-in 5×8 pixel font (printable ASCII; other characters draw
// as '?') scaled by an integer factor -- and a PNG encoder (8-bit RGB, zlib-deflated scanlines with filter
// 0; PNG spec, W3C 2003). No antialiasing: plots are rendered at 2× for legibility.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lmp {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};
Rgb parse_color(const std::string& hex);  // "#rrggbb"

enum class Anchor { Start, Middle, End };

class Canvas {
 public:
  Canvas(int w, int h, Rgb bg = {255, 255, 255});
  int width() const { return w_; }
  int height() const { return h_; }
  Rgb at(int x, int y) const { return px_[size_t(y) * w_ + x]; }
  void set(int x, int y, Rgb c) {
    if (x >= 0 && y >= 0 && x < w_ && y < h_) px_[size_t(y) * w_ + x] = c;
  }
  void fill_rect(double x, double y, double w, double h, Rgb c);
  void line(double x0, double y0, double x1, double y1, Rgb c, double width = 1, bool dashed = false);
  void disc(double cx, double cy, double r, Rgb c);
  // Text with its baseline at y; scale = pixel size of one font dot. vertical: rotated −90° (reads upward),
  // anchored along the rotated direction.
  void text(double x, double y, const std::string& s, int scale, Rgb c, Anchor a = Anchor::Start, bool vertical = false);
  const std::vector<Rgb>& pixels() const { return px_; }

 private:
  int w_, h_;
  std::vector<Rgb> px_;
};

// Width in pixels of s drawn at scale (6 dots per character, one of them spacing).
int text_width(const std::string& s, int scale);
// The 8 rows of one glyph, 5 bits each (bit 4 = leftmost column); row 6 is the baseline row.
const uint8_t* glyph_rows(unsigned char ch);

std::string encode_png(const Canvas& c);
void write_png(const std::string& path, const Canvas& c);  // atomic (tmp + rename); throws lmp::Error
// Decodes a PNG written by encode_png (8-bit RGB, filter 0) -- for tests.
Canvas decode_png(const std::string& data);

}  // namespace lmp

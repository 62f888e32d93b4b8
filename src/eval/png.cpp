#include "eval/png.h"

#include <algorithm>
#include <cmath>
#include <zlib.h>

#include "core/error.h"
#include "core/mmap_file.h"

namespace lmp {

Rgb parse_color(const std::string& hex) {
  check(hex.size() == 7 && hex[0] == '#', "color '{}': want #rrggbb", hex);
  auto v = std::stoul(hex.substr(1), nullptr, 16);
  return {uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)};
}

Canvas::Canvas(int w, int h, Rgb bg) : w_(w), h_(h), px_(size_t(w) * size_t(h), bg) {
  check(w > 0 && h > 0 && w <= 16384 && h <= 16384, "canvas {}x{}: size out of range", w, h);
}

void Canvas::fill_rect(double x, double y, double w, double h, Rgb c) {
  int x0 = std::max(0, int(std::lround(x))), y0 = std::max(0, int(std::lround(y)));
  int x1 = std::min(w_, int(std::lround(x + w))), y1 = std::min(h_, int(std::lround(y + h)));
  for (int yy = y0; yy < y1; yy++)
    for (int xx = x0; xx < x1; xx++) px_[size_t(yy) * w_ + xx] = c;
}

void Canvas::disc(double cx, double cy, double r, Rgb c) {
  int x0 = int(std::floor(cx - r)), x1 = int(std::ceil(cx + r)), y0 = int(std::floor(cy - r)), y1 = int(std::ceil(cy + r));
  for (int y = y0; y <= y1; y++)
    for (int x = x0; x <= x1; x++) {
      double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      if (dx * dx + dy * dy <= r * r) set(x, y, c);
    }
}

// Steps along the segment at sub-pixel spacing, stamping a square of the line's width (dashes: 6 on, 4 off
// in units of the width).
void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, double width, bool dashed) {
  double len = std::hypot(x1 - x0, y1 - y0);
  int steps = std::max(1, int(std::ceil(len * 2)));
  double half = std::max(0.5, width / 2);
  for (int i = 0; i <= steps; i++) {
    double t = double(i) / steps;
    if (dashed && std::fmod(t * len, 10 * std::max(1.0, width)) > 6 * std::max(1.0, width)) continue;
    double x = x0 + t * (x1 - x0), y = y0 + t * (y1 - y0);
    fill_rect(x - half, y - half, 2 * half, 2 * half, c);
  }
}

int text_width(const std::string& s, int scale) {
  int n = 0;
  for (unsigned char ch : s)
    if ((ch & 0xC0) != 0x80) n++;  // one glyph per UTF-8 character
  return n * 6 * scale;
}

void Canvas::text(double x, double y, const std::string& s, int scale, Rgb c, Anchor a, bool vertical) {
  double w = text_width(s, scale);
  double off = a == Anchor::Start ? 0 : a == Anchor::Middle ? -w / 2 : -w;
  // Pen position along the text direction; glyph row 6 sits on the baseline.
  int k = 0;
  for (size_t i = 0; i < s.size(); i++) {
    unsigned char ch = static_cast<unsigned char>(s[i]);
    if ((ch & 0xC0) == 0x80) continue;  // UTF-8 continuation byte
    const uint8_t* rows = glyph_rows(ch >= 0x80 ? '?' : ch);
    double along = off + double(k) * 6 * scale;
    for (int r = 0; r < 8; r++)
      for (int col = 0; col < 5; col++) {
        if (!(rows[r] >> (4 - col) & 1)) continue;
        // u: along the text; v: top of the dot relative to the baseline (row 6 ends on it).
        double u = along + col * scale, v = double(r - 7) * scale;
        if (!vertical)
          fill_rect(x + u, y + v, scale, scale, c);
        else  // rotated −90°: text runs upward, glyph tops face left
          fill_rect(x + v, y - u - scale, scale, scale, c);
      }
    k++;
  }
}

namespace {

void put_u32(std::string& s, uint32_t v) {
  for (int i = 3; i >= 0; i--) s.push_back(char((v >> (8 * i)) & 0xFF));
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, uint32_t(data.size()));
  std::string td = std::string(type, 4) + data;
  out += td;
  put_u32(out, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(td.data()), uInt(td.size()))));
}

uint32_t get_u32(const std::string& s, size_t at) {
  check(at + 4 <= s.size(), "png: truncated");
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

const char kSignature[] = "\x89PNG\r\n\x1a\n";

}  // namespace

std::string encode_png(const Canvas& c) {
  const int w = c.width(), h = c.height();
  std::string raw;
  raw.reserve(size_t(h) * (1 + 3 * size_t(w)));
  for (int y = 0; y < h; y++) {
    raw.push_back(0);  // filter: none
    for (int x = 0; x < w; x++) {
      Rgb p = c.at(x, y);
      raw.push_back(char(p.r)), raw.push_back(char(p.g)), raw.push_back(char(p.b));
    }
  }
  uLongf zlen = compressBound(uLong(raw.size()));
  std::string z(zlen, '\0');
  int rc = compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, reinterpret_cast<const Bytef*>(raw.data()),
                     uLong(raw.size()), 9);
  check(rc == Z_OK, "png: zlib compress failed ({})", rc);
  z.resize(zlen);
  std::string out(kSignature, 8), ihdr;
  put_u32(ihdr, uint32_t(w));
  put_u32(ihdr, uint32_t(h));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit, RGB, deflate, filter method 0, no interlace
  put_chunk(out, "IHDR", ihdr);
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", "");
  return out;
}

void write_png(const std::string& path, const Canvas& c) {
  std::string png = encode_png(c);
  write_file_atomic(path, png.data(), png.size());
}

Canvas decode_png(const std::string& data) {
  check(data.size() > 8 && data.compare(0, 8, std::string(kSignature, 8)) == 0, "png: bad signature");
  size_t at = 8;
  int w = 0, h = 0;
  std::string z;
  while (at + 8 <= data.size()) {
    uint32_t len = get_u32(data, at);
    std::string type = data.substr(at + 4, 4);
    check(at + 12 + len <= data.size(), "png: chunk {} past the end", type);
    std::string body = data.substr(at + 8, len);
    uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(data.data() + at + 4), uInt(len + 4)));
    check(crc == get_u32(data, at + 8 + len), "png: chunk {} CRC mismatch", type);
    if (type == "IHDR") {
      w = int(get_u32(body, 0)), h = int(get_u32(body, 4));
      check(body.substr(8, 5) == std::string("\x08\x02\x00\x00\x00", 5), "png: only 8-bit RGB supported");
    } else if (type == "IDAT") {
      z += body;
    }
    at += 12 + len;
  }
  check(w > 0 && h > 0, "png: no IHDR");
  std::string raw(size_t(h) * (1 + 3 * size_t(w)), '\0');
  uLongf rlen = uLongf(raw.size());
  check(uncompress(reinterpret_cast<Bytef*>(raw.data()), &rlen, reinterpret_cast<const Bytef*>(z.data()),
                   uLong(z.size())) == Z_OK && rlen == raw.size(), "png: bad image data");
  Canvas c(w, h);
  for (int y = 0; y < h; y++) {
    const char* row = raw.data() + size_t(y) * (1 + 3 * size_t(w));
    check(row[0] == 0, "png: filter {} not supported", int(row[0]));
    for (int x = 0; x < w; x++) c.set(x, y, {uint8_t(row[1 + 3 * x]), uint8_t(row[2 + 3 * x]), uint8_t(row[3 + 3 * x])});
  }
  return c;
}

}  // namespace lmp

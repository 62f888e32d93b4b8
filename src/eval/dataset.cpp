#include "eval/dataset.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"

namespace lmp {

TextFormat parse_text_format(const std::string& s) {
  if (s == "text") return TextFormat::Text;
  if (s == "docs") return TextFormat::Docs;
  if (s == "wikitext") return TextFormat::WikiText;
  if (s == "c4-json") return TextFormat::C4Json;
  fail("--format '{}': want text, docs, wikitext or c4-json", s);
}

const char* text_format_name(TextFormat f) {
  switch (f) {
    case TextFormat::Text: return "text";
    case TextFormat::Docs: return "docs";
    case TextFormat::WikiText: return "wikitext";
    case TextFormat::C4Json: return "c4-json";
  }
  return "?";
}

static std::string_view strip_ascii_ws(std::string_view s) {
  const char* ws = " \t\n\r\v\f";
  size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return {};
  size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

static void append(std::vector<int>& ids, const std::vector<int>& more) { ids.insert(ids.end(), more.begin(), more.end()); }

std::vector<int> tokenize_text(const Tokenizer& tok, const std::string& raw, TextFormat fmt, const std::string& path) {
  std::string_view text = raw;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::vector<int> ids;
  switch (fmt) {
    case TextFormat::Text: return tok.encode(text, true);
    case TextFormat::Docs: {
      const std::string_view sep = "<|endoftext|>";
      size_t pos = 0;
      while (pos <= text.size()) {
        size_t end = text.find(sep, pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view doc = strip_ascii_ws(text.substr(pos, end - pos));
        if (!doc.empty()) append(ids, tok.encode(doc, true));
        pos = end + sep.size();
      }
      return ids;
    }
    case TextFormat::WikiText: {
      std::string joined;
      size_t pos = 0;
      bool first = true;
      while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        end = end == std::string_view::npos ? text.size() : end + 1;
        if (!first) joined += "\n\n";
        joined.append(text.substr(pos, end - pos));
        first = false;
        pos = end;
      }
      return tok.encode(joined, true);
    }
    case TextFormat::C4Json: {
      size_t pos = 0, line = 0;
      while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        line++;
        std::string_view l = strip_ascii_ws(text.substr(pos, end - pos));
        pos = end + 1;
        if (l.empty()) continue;
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(l);
        } catch (const nlohmann::json::exception&) {
          fail("{}: line {} is not valid JSON", path, line);
        }
        check(j.is_object() && j.contains("text") && j["text"].is_string(), "{}: line {} has no string field 'text'",
              path, line);
        append(ids, tok.encode(j["text"].get<std::string>(), true));
      }
      return ids;
    }
  }
  return ids;
}

std::vector<int> tokenize_file(const Tokenizer& tok, const std::string& path, TextFormat fmt) {
  return tokenize_text(tok, read_file(path), fmt, path);
}

}  // namespace lmp

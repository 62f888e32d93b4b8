// Text handling for the tokenizers: UTF-8 validation/repair, GPT-2's byte<->unicode alphabet, added-token
// splitting, and the regex pre-tokenizer.
//
// Why PCRE2 for pre-tokenization: tokenizer.json carries the Split pattern itself (GPT-2, Llama-3, Qwen2,
// DeepSeek, SmolLM's Digits ... all differ), written for Oniguruma / fancy-regex with \p{L}, \p{N},
// (?i:...) and look-ahead (\s+(?!\S)). std::regex has none of these; a hand scanner would cover only the
// patterns known today. PCRE2 with PCRE2_UTF | PCRE2_UCP runs the stored pattern as written, with Unicode
// general categories, and its JIT makes it fast. PCRE2_MATCH_INVALID_UTF lets byte-level BPE accept
// arbitrary bytes: invalid sequences never match and end up as pieces of their own between matches.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>

#include "core/error.h"
#include "io/tokenizer_internal.h"

namespace lmp {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace tok {

// ---- UTF-8 ----

size_t utf8_valid_len(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned c = b(i);
  if (c < 0x80) return 1;
  size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
  if (n == 0 || c > 0xF4 || i + n > s.size()) return 0;
  // Second-byte limits exclude overlongs (E0, F0), surrogates (ED) and code points past U+10FFFF (F4).
  unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
  unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; k++)
    if ((b(i + k) & 0xC0) != 0x80) return 0;
  return n;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Length of the maximal prefix of an invalid sequence at s[i] that could still start a valid one (>= 1).
static size_t invalid_run(std::string_view s, size_t i) {
  size_t n = 1;
  while (n < 4 && i + n < s.size()) {
    std::string probe(s.substr(i, n));
    probe += s[i + n];
    probe.append(4, '\x80');  // pad: if the prefix is valid so far, some continuation completes it
    size_t want = utf8_valid_len(probe, 0);
    if (want == 0 || want <= n) break;
    n++;
  }
  return n;
}

std::string sanitize_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8_valid_len(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += invalid_run(s, i);
    }
  }
  return out;
}

std::string meta_to_space(std::string_view p) {
  std::string out;
  for (size_t i = 0; i < p.size(); i++) {
    if (p.substr(i, 3) == "\xE2\x96\x81") {
      out += ' ';
      i += 2;
    } else {
      out += p[i];
    }
  }
  return out;
}

// ---- GPT-2 byte alphabet ----

static std::array<char32_t, 256> make_byte_codepoints() {
  std::array<char32_t, 256> cp{};
  char32_t next = 256;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[b] = printable ? char32_t(b) : next++;
  }
  return cp;
}

static const std::array<char32_t, 256>& byte_codepoints() {
  static const auto cp = make_byte_codepoints();
  return cp;
}

const std::array<std::string, 256>& byte_alphabet() {
  static const auto alpha = [] {
    std::array<std::string, 256> a;
    for (int b = 0; b < 256; b++) append_utf8(a[b], byte_codepoints()[b]);
    return a;
  }();
  return alpha;
}

int alphabet_byte(char32_t cp) {
  static const auto inv = [] {
    std::vector<int> v(324, -1);  // every code point of the alphabet is below U+0144
    for (int b = 0; b < 256; b++) v[byte_codepoints()[b]] = b;
    return v;
  }();
  return cp < inv.size() ? inv[cp] : -1;
}

// ---- added tokens ----

AddedTokenSplitter::AddedTokenSplitter(const std::vector<AddedToken>& added) {
  for (const auto& t : added)
    if (!t.content.empty()) tokens_.push_back(t);
  std::stable_sort(tokens_.begin(), tokens_.end(),
                   [](const AddedToken& a, const AddedToken& b) { return a.content.size() > b.content.size(); });
  for (size_t k = 0; k < tokens_.size(); k++)
    by_first_[static_cast<unsigned char>(tokens_[k].content[0])].push_back(int(k));
}

int AddedTokenSplitter::match_at(std::string_view text, size_t i, bool parse_special) const {
  for (int k : by_first_[static_cast<unsigned char>(text[i])]) {
    const auto& t = tokens_[k];
    if ((parse_special || !t.special) && text.substr(i, t.content.size()) == t.content) return k;
  }
  return -1;
}

static bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::vector<Segment> AddedTokenSplitter::split(std::string_view text, bool parse_special) const {
  std::vector<Segment> out;
  size_t start = 0;  // start of the pending plain-text segment
  auto flush = [&](size_t end) {
    if (end > start) out.push_back({text.substr(start, end - start), -1, start == 0});
  };
  for (size_t i = 0; i < text.size();) {
    int k = tokens_.empty() ? -1 : match_at(text, i, parse_special);
    if (k < 0) {
      i++;
      continue;
    }
    const auto& t = tokens_[k];
    size_t end = i;
    if (t.lstrip)
      while (end > start && is_ascii_space(text[end - 1])) end--;
    flush(end);
    out.push_back({text.substr(i, t.content.size()), t.id, false});
    i += t.content.size();
    if (t.rstrip)
      while (i < text.size() && is_ascii_space(text[i])) i++;
    start = i;
  }
  flush(text.size());
  return out;
}

// ---- regex pre-tokenizer ----

struct RegexSplitter::Step {
  pcre2_code* code = nullptr;
  bool removed = false;
  ~Step() { pcre2_code_free(code); }
};

static std::string pcre2_message(int err) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(err, buf, sizeof buf);
  return reinterpret_cast<const char*>(buf);
}

RegexSplitter::RegexSplitter(const std::vector<SplitRule>& rules, const std::string& source) : source_(source) {
  for (const auto& r : rules) {
    auto st = std::make_unique<Step>();
    st->removed = r.removed;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | (r.literal ? PCRE2_LITERAL : 0);
    int err = 0;
    PCRE2_SIZE at = 0;
    st->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(r.pattern.data()), r.pattern.size(), opts, &err, &at,
                             nullptr);
    if (!st->code)
      fail("{}: pre-tokenizer pattern '{}' does not compile at offset {}: {}", source, r.pattern, at,
           pcre2_message(err));
    pcre2_jit_compile(st->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is unavailable
    steps_.push_back(std::move(st));
  }
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::split(std::string_view text, std::vector<std::string_view>* out) const {
  std::vector<std::string_view> cur{text}, next;
  for (const auto& st : steps_) {
    next.clear();
    for (auto piece : cur) split_step(*st, piece, &next);
    std::swap(cur, next);
  }
  for (auto p : cur)
    if (!p.empty()) out->push_back(p);
}

// Cuts text at every match of the step's pattern: matches and the gaps between them become pieces
// (Isolated), or only the gaps (Removed).
void RegexSplitter::split_step(const Step& st, std::string_view text, std::vector<std::string_view>* out) const {
  struct MatchData {
    pcre2_match_data* md;
    ~MatchData() { pcre2_match_data_free(md); }
  } m{pcre2_match_data_create(1, nullptr)};
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0, gap = 0;
  while (pos < text.size()) {
    int rc = pcre2_match(st.code, subject, text.size(), pos, 0, m.md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // a very long run outgrew the 32 KiB JIT stack: interpret
      rc = pcre2_match(st.code, subject, text.size(), pos, PCRE2_NO_JIT, m.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) fail("{}: pre-tokenizer regex failed: {}", source_, pcre2_message(rc));
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    size_t a = ov[0], b = ov[1];
    if (b == a) {  // empty match: no cut here, step past one byte
      pos = a + 1;
      continue;
    }
    if (a > gap) out->push_back(text.substr(gap, a - gap));
    if (!st.removed) out->push_back(text.substr(a, b - a));
    pos = gap = b;
  }
  if (gap < text.size()) out->push_back(text.substr(gap));
}

}  // namespace tok
}  // namespace lmp

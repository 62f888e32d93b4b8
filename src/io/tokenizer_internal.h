// Internals shared by the tokenizer files (not for use outside src/io/tokenizer_*.cpp): UTF-8 helpers,
// GPT-2's byte<->unicode alphabet, added-token splitting and the PCRE2 regex pre-tokenizer.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer.h"

namespace lmp::tok {

// Length of the UTF-8 sequence starting at s[i] when it is a valid one, else 0.
size_t utf8_valid_len(std::string_view s, size_t i);
void append_utf8(std::string& out, char32_t cp);
// Copies s, replacing each maximal invalid subsequence by U+FFFD (WHATWG / Python errors='replace').
std::string sanitize_utf8(std::string_view s);
// SentencePiece piece text: every ▁ (U+2581) becomes a space.
std::string meta_to_space(std::string_view piece);

// GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100..U+0143
// in byte order. byte_alphabet()[b] is the UTF-8 of b's character; alphabet_byte(cp) inverts it (-1 if none).
const std::array<std::string, 256>& byte_alphabet();
int alphabet_byte(char32_t cp);

// A piece of text between added tokens (id < 0) or one matched added token (id >= 0). `first` marks the
// segment at the start of the text (SentencePiece prepend_scheme "first").
struct Segment {
  std::string_view text;
  int id = -1;
  bool first = false;
};

// Leftmost-longest matching of added tokens in raw text (Hugging Face matches added tokens before
// normalization). lstrip/rstrip tokens swallow the ASCII whitespace beside a match.
class AddedTokenSplitter {
 public:
  explicit AddedTokenSplitter(const std::vector<AddedToken>& added);
  std::vector<Segment> split(std::string_view text, bool parse_special) const;

 private:
  // Returns the index into tokens_ of the longest token matching at text[i], or -1.
  int match_at(std::string_view text, size_t i, bool parse_special) const;
  std::vector<AddedToken> tokens_;               // sorted by decreasing length
  std::array<std::vector<int>, 256> by_first_;   // first byte -> indices into tokens_
};

// Pre-tokenizer: a sequence of split steps over PCRE2 patterns compiled with UTF, UCP and
// MATCH_INVALID_UTF (invalid bytes never match, so they fall between matches). JIT-compiled when possible.
class RegexSplitter {
 public:
  RegexSplitter(const std::vector<SplitRule>& rules, const std::string& source);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;
  // Appends the pieces of text to out (views into text).
  void split(std::string_view text, std::vector<std::string_view>* out) const;
  bool empty() const { return steps_.empty(); }

 private:
  struct Step;
  void split_step(const Step& st, std::string_view text, std::vector<std::string_view>* out) const;
  std::vector<std::unique_ptr<Step>> steps_;
  std::string source_;
};

}  // namespace lmp::tok

// BPE tokenizers: the merge loop shared by both flavours, SentencePiece-style BPE with byte fallback
// (Llama-2 family) and byte-level BPE (GPT-2 / Llama-3 family), and make_bpe_tokenizer.
//
// Merge loop (same as the reference tools/ref_llama.py and Hugging Face's BPE::merge_word): the symbols of
// a word form a doubly linked list; every adjacent pair that has a merge goes into a min-heap keyed by
// (rank, left position). Pop the best pair; skip it if stale (left symbol gone, right neighbour changed
// or no longer that rank); else merge right into left and push the two new pairs with the neighbours.
// O(n log n) in the number of symbols, so a 1 MB document without pre-tokenization (Llama-2) is fine.
#include <algorithm>
#include <unordered_map>

#include "core/error.h"
#include "io/tokenizer_internal.h"

namespace lmp {
namespace {

using tok::AddedTokenSplitter;
using tok::Segment;

// (left id, right id) -> (rank, merged id). Rank: lower merges first.
class PairTable {
 public:
  struct Merge {
    int rank, id;
  };
  void add(int l, int r, int rank, int id) { map_.emplace(key(l, r), Merge{rank, id}); }  // first one wins
  const Merge* find(int l, int r) const {
    auto it = map_.find(key(l, r));
    return it == map_.end() ? nullptr : &it->second;
  }
  size_t size() const { return map_.size(); }

 private:
  static uint64_t key(int l, int r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }
  std::unordered_map<uint64_t, Merge> map_;
};

// Merges sym in place by the pair table (see the file comment).
void bpe_merge(std::vector<int>& sym, const PairTable& pairs) {
  const int n = int(sym.size());
  if (n < 2) return;
  struct Cand {
    int rank, pos;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int> prev, next;
  thread_local std::vector<Cand> heap;
  prev.resize(n);
  next.resize(n);
  heap.clear();
  for (int i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
    if (i + 1 < n)
      if (auto m = pairs.find(sym[i], sym[i + 1])) heap.push_back({m->rank, i});
  }
  auto cmp = std::greater<Cand>();
  std::make_heap(heap.begin(), heap.end(), cmp);
  auto push = [&](int i, int j) {
    if (auto m = pairs.find(sym[i], sym[j])) {
      heap.push_back({m->rank, i});
      std::push_heap(heap.begin(), heap.end(), cmp);
    }
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Cand c = heap.back();
    heap.pop_back();
    int i = c.pos, j = sym[i] < 0 ? -1 : next[i];
    if (j < 0) continue;
    auto m = pairs.find(sym[i], sym[j]);
    if (!m || m->rank != c.rank) continue;
    sym[i] = m->id;
    sym[j] = -1;  // dead
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) push(prev[i], i);
    if (next[i] >= 0) push(i, next[i]);
  }
  sym.erase(std::remove(sym.begin(), sym.end(), -1), sym.end());
}

// What both BPE flavours share: pieces, the piece -> id map, merge pairs, added tokens, decode texts.
class BpeBase : public Tokenizer {
 public:
  explicit BpeBase(const BpeVocab& v);
  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    return encode_impl(text, add_bos, false);
  }
  std::vector<int> encode_with_special(std::string_view text, bool add_bos) const override {
    return encode_impl(text, add_bos, true);
  }
  std::string decode(const std::vector<int>& ids) const override;
  int vocab_size() const override { return int(pieces_.size()); }
  int bos_id() const override { return bos_; }
  int eos_id() const override { return eos_; }
  std::string id_to_piece(int id) const override { return valid(id) ? pieces_[id] : std::string(); }
  std::optional<BpeVocab> vocab() const override { return vocab_; }

 protected:
  // Appends the ids of one plain-text segment.
  virtual void encode_segment(const Segment& seg, std::vector<int>* ids) const = 0;
  bool valid(int id) const { return id >= 0 && id < int(pieces_.size()); }
  void check_id(int id) const { check(valid(id), "{}: token id {} outside the vocabulary of {}", source_, id, pieces_.size()); }
  int find(std::string_view piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
  }
  // Strip one leading space of the decoded text (SentencePiece's prefix "▁")?
  virtual bool strips_leading_space() const { return false; }

  std::string source_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::string_view, int> ids_;  // views into pieces_
  std::vector<std::string> text_;                   // id -> decoded bytes ("" for special tokens)
  std::vector<bool> special_;                       // skipped by decode
  PairTable pairs_;
  int bos_ = -1, eos_ = -1, unk_ = -1;
  BpeVocab vocab_;  // as given, for vocab()

 private:
  std::vector<int> encode_impl(std::string_view text, bool add_bos, bool parse_special) const;
  void add_merges(const BpeVocab& v);
  void add_score_merges(const BpeVocab& v);
  AddedTokenSplitter added_;
};

std::vector<AddedToken> added_tokens_of(const BpeVocab& v) {
  if (!v.added.empty() || v.types.empty()) return v.added;
  std::vector<AddedToken> out;  // GGUF: control tokens are special, user-defined ones plain added tokens
  for (size_t i = 0; i < v.types.size() && i < v.tokens.size(); i++)
    if (v.types[i] == TokenType::Control || v.types[i] == TokenType::UserDefined)
      out.push_back({int(i), v.tokens[i], v.types[i] == TokenType::Control, false, false});
  return out;
}

BpeBase::BpeBase(const BpeVocab& v)
    : source_(v.source), pieces_(v.tokens), bos_(v.bos_id), eos_(v.eos_id), unk_(v.unk_id), vocab_(v),
      added_(added_tokens_of(v)) {
  check(!pieces_.empty(), "{}: empty vocabulary", source_);
  check(v.types.empty() || v.types.size() == pieces_.size(), "{}: {} token types for {} tokens", source_,
        v.types.size(), pieces_.size());
  ids_.reserve(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); i++)
    if (!pieces_[i].empty()) ids_.emplace(pieces_[i], int(i));  // first id of a duplicated piece wins
  special_.assign(pieces_.size(), false);
  for (const auto& t : added_tokens_of(v)) {
    check(valid(t.id), "{}: added token '{}' has id {} outside the vocabulary", source_, t.content, t.id);
    special_[t.id] = t.special;
  }
  for (size_t i = 0; i < v.types.size(); i++)
    if (v.types[i] == TokenType::Control || v.types[i] == TokenType::Unknown) special_[i] = true;
  for (int id : {bos_, eos_, unk_})
    check(id == -1 || valid(id), "{}: special token id {} outside the vocabulary", source_, id);
  if (!v.merges.empty())
    add_merges(v);
  else if (!v.scores.empty())
    add_score_merges(v);
}

void BpeBase::add_merges(const BpeVocab& v) {
  for (size_t r = 0; r < v.merges.size(); r++) {
    const auto& [a, b] = v.merges[r];
    int l = find(a), rr = find(b), m = find(a + b);
    if (l < 0 || rr < 0 || m < 0)
      fail("{}: merge {} '{} {}' uses a piece that is not in the vocabulary", source_, r, a, b);
    pairs_.add(l, rr, int(r), m);
  }
}

// SentencePiece BPE by scores: the merged piece with the highest score merges first, equal scores tie to
// the leftmost pair. Rank = dense rank of the merged piece's score (descending), so equal scores give equal
// ranks and the heap's position order breaks the tie. Every Normal/UserDefined piece of two or more chars
// is registered for each of its splits into two existing pieces.
void BpeBase::add_score_merges(const BpeVocab& v) {
  check(v.scores.size() == pieces_.size(), "{}: {} scores for {} tokens", source_, v.scores.size(), pieces_.size());
  std::vector<float> distinct(v.scores);
  std::sort(distinct.begin(), distinct.end(), std::greater<float>());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  for (size_t t = 0; t < pieces_.size(); t++) {
    auto type = v.types.empty() ? TokenType::Normal : v.types[t];
    if (type != TokenType::Normal && type != TokenType::UserDefined) continue;
    int rank = int(std::lower_bound(distinct.begin(), distinct.end(), v.scores[t], std::greater<float>()) -
                   distinct.begin());
    const std::string& s = pieces_[t];
    for (size_t k = tok::utf8_valid_len(s, 0); k > 0 && k < s.size(); k += std::max<size_t>(1, tok::utf8_valid_len(s, k))) {
      int l = find(std::string_view(s).substr(0, k)), r = find(std::string_view(s).substr(k));
      if (l >= 0 && r >= 0) pairs_.add(l, r, rank, int(t));
    }
  }
}

std::vector<int> BpeBase::encode_impl(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 2);
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  for (const auto& seg : added_.split(text, parse_special)) {
    if (seg.id >= 0)
      ids.push_back(seg.id);
    else
      encode_segment(seg, &ids);
  }
  return ids;
}

std::string BpeBase::decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids) {
    check_id(id);
    if (!special_[id]) out += text_[id];
  }
  if (strips_leading_space() && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return tok::sanitize_utf8(out);
}

// ---- SentencePiece-style BPE ----

const char kMeta[] = "\xE2\x96\x81";  // ▁ U+2581

// Byte piece "<0xNN>" -> NN, else -1.
int byte_piece_value(const std::string& p) {
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  int hi = hex(p[3]), lo = hex(p[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

class SpmBpeTokenizer final : public BpeBase {
 public:
  explicit SpmBpeTokenizer(const BpeVocab& v);
  std::string decode_piece(int prev_id, int id) const override;
  std::string kind() const override { return "sentencepiece-bpe"; }

 protected:
  void encode_segment(const Segment& seg, std::vector<int>* ids) const override;
  bool strips_leading_space() const override { return prefix_ != PrefixSpace::Never; }

 private:
  void encode_word(std::string_view word, std::vector<int>* ids) const;
  PrefixSpace prefix_;
  bool split_on_space_, byte_fallback_;
  std::array<int, 256> byte_id_;   // byte -> id of its <0xNN> piece
  std::array<int, 128> ascii_id_;  // ASCII char -> id of its one-char piece
};

SpmBpeTokenizer::SpmBpeTokenizer(const BpeVocab& v)
    : BpeBase(v), prefix_(v.prefix_space), split_on_space_(v.split_on_space), byte_fallback_(v.byte_fallback) {
  byte_id_.fill(-1);
  for (int c = 0; c < 128; c++) ascii_id_[c] = find(std::string(1, char(c)));
  text_.resize(pieces_.size());
  auto added = added_tokens_of(v);
  for (size_t i = 0; i < pieces_.size(); i++) {
    int b = byte_piece_value(pieces_[i]);
    if (b >= 0 && byte_id_[b] < 0) byte_id_[b] = int(i);
    text_[i] = b >= 0 ? std::string(1, char(b)) : tok::meta_to_space(pieces_[i]);
  }
  for (const auto& t : added) text_[t.id] = t.content;  // added tokens decode verbatim
}

// Normalizes one segment (prefix ▁, spaces -> ▁) and BPE-encodes it, whole or word by word.
void SpmBpeTokenizer::encode_segment(const Segment& seg, std::vector<int>* ids) const {
  bool prefix = prefix_ == PrefixSpace::Always || (prefix_ == PrefixSpace::First && seg.first);
  std::string norm;
  norm.reserve(seg.text.size() + seg.text.size() / 4 + 3);
  if (prefix) norm += kMeta;
  for (char c : seg.text) {
    if (c == ' ')
      norm += kMeta;
    else
      norm += c;
  }
  if (!split_on_space_) return encode_word(norm, ids);
  std::string_view s(norm);
  for (size_t start = 0; start < s.size();) {  // each word starts at a ▁
    size_t next = s.find(kMeta, start + 1);
    if (next == std::string_view::npos) next = s.size();
    encode_word(s.substr(start, next - start), ids);
    start = next;
  }
}

// Symbols = the word's characters (pieces), or their <0xNN> bytes when the char is not a piece; then merge.
void SpmBpeTokenizer::encode_word(std::string_view w, std::vector<int>* ids) const {
  thread_local std::vector<int> sym;
  sym.clear();
  for (size_t i = 0; i < w.size();) {
    size_t n = std::max<size_t>(1, tok::utf8_valid_len(w, i));
    unsigned char c = w[i];
    int id = c < 128 ? ascii_id_[c] : find(w.substr(i, n));
    if (id >= 0) {
      sym.push_back(id);
    } else if (byte_fallback_) {
      for (size_t k = i; k < i + n; k++) {
        int b = byte_id_[static_cast<unsigned char>(w[k])];
        check(b >= 0 || unk_ >= 0, "{}: no <0x{:02X}> byte piece and no unknown token", source_, (unsigned char)w[k]);
        sym.push_back(b >= 0 ? b : unk_);
      }
    } else {
      check(unk_ >= 0, "{}: character not in the vocabulary and no unknown token", source_);
      sym.push_back(unk_);
    }
    i += n;
  }
  bpe_merge(sym, pairs_);
  ids->insert(ids->end(), sym.begin(), sym.end());
}

std::string SpmBpeTokenizer::decode_piece(int prev_id, int id) const {
  check_id(id);
  if (special_[id]) return {};
  bool at_start = prev_id < 0 || prev_id == bos_ || (valid(prev_id) && special_[prev_id]);
  if (at_start && prefix_ != PrefixSpace::Never && !text_[id].empty() && text_[id][0] == ' ')
    return text_[id].substr(1);
  return text_[id];
}

// ---- byte-level BPE ----

class ByteLevelTokenizer final : public BpeBase {
 public:
  explicit ByteLevelTokenizer(const BpeVocab& v);
  std::string decode_piece(int prev_id, int id) const override {
    check_id(id);
    return special_[id] ? std::string() : text_[id];
  }
  std::string kind() const override { return "byte-level-bpe"; }

 protected:
  void encode_segment(const Segment& seg, std::vector<int>* ids) const override;

 private:
  void encode_word(std::string_view w, std::vector<int>* ids) const;
  PrefixSpace prefix_;
  bool ignore_merges_;
  std::array<int, 256> byte_id_;  // byte -> id of its one-character piece in the GPT-2 alphabet
  tok::RegexSplitter regex_;
};

// Maps a piece spelled in the GPT-2 alphabet back to bytes; chars outside the alphabet stay as UTF-8.
std::string alphabet_to_bytes(const std::string& piece) {
  std::string out;
  for (size_t i = 0; i < piece.size();) {
    size_t n = std::max<size_t>(1, tok::utf8_valid_len(piece, i));
    char32_t cp = static_cast<unsigned char>(piece[i]);
    if (n > 1) {
      cp &= 0xFF >> (n + 1);
      for (size_t k = 1; k < n; k++) cp = (cp << 6) | (static_cast<unsigned char>(piece[i + k]) & 0x3F);
    }
    int b = tok::alphabet_byte(cp);
    if (b >= 0)
      out += char(b);
    else
      out.append(piece, i, n);
    i += n;
  }
  return out;
}

ByteLevelTokenizer::ByteLevelTokenizer(const BpeVocab& v)
    : BpeBase(v), prefix_(v.prefix_space), ignore_merges_(v.ignore_merges), regex_(v.splits, v.source) {
  for (int b = 0; b < 256; b++) {
    byte_id_[b] = find(tok::byte_alphabet()[b]);
    check(byte_id_[b] >= 0, "{}: byte-level vocabulary lacks the piece '{}' for byte 0x{:02X}", source_,
          tok::byte_alphabet()[b], b);
  }
  text_.resize(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); i++) text_[i] = alphabet_to_bytes(pieces_[i]);
  for (const auto& t : added_tokens_of(v)) text_[t.id] = t.content;
}

void ByteLevelTokenizer::encode_segment(const Segment& seg, std::vector<int>* ids) const {
  bool prefix = prefix_ == PrefixSpace::Always || (prefix_ == PrefixSpace::First && seg.first);
  std::string owned;
  std::string_view text = seg.text;
  if (prefix && text[0] != ' ') {
    owned.reserve(text.size() + 1);
    owned += ' ';
    owned.append(text);
    text = owned;
  }
  thread_local std::vector<std::string_view> words;
  words.clear();
  if (regex_.empty())
    words.push_back(text);
  else
    regex_.split(text, &words);
  for (auto w : words) encode_word(w, ids);
}

void ByteLevelTokenizer::encode_word(std::string_view w, std::vector<int>* ids) const {
  if (ignore_merges_) {
    std::string spelled;
    for (char c : w) spelled += tok::byte_alphabet()[static_cast<unsigned char>(c)];
    if (int id = find(spelled); id >= 0) return ids->push_back(id);
  }
  thread_local std::vector<int> sym;
  sym.clear();
  for (char c : w) sym.push_back(byte_id_[static_cast<unsigned char>(c)]);
  bpe_merge(sym, pairs_);
  ids->insert(ids->end(), sym.begin(), sym.end());
}

}  // namespace

std::optional<BpeVocab> Tokenizer::vocab() const { return std::nullopt; }

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocab& v) {
  if (v.kind == BpeKind::ByteLevel) return std::make_unique<ByteLevelTokenizer>(v);
  return std::make_unique<SpmBpeTokenizer>(v);
}

}  // namespace lmp

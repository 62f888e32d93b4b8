// Tokenizers of Hugging Face checkpoints: SentencePiece-style BPE with byte fallback (Llama-2, TinyLlama,
// llama2.c) and byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM) from tokenizer.json; tokenizer.model
// (SentencePiece protobuf) through libsentencepiece. Encode/decode match the reference tokenizers' ids.
//
// Both BPE flavours can also be built from in-memory vocabulary data (BpeVocab, make_bpe_tokenizer), so a
// GGUF importer can make a tokenizer from tokenizer.ggml.* metadata without a tokenizer.json.
// Implementation: tokenizer_bpe.cpp (merge loop, both BPE tokenizers), tokenizer_text.cpp (UTF-8, added
// tokens, regex pre-tokenizer), tokenizer_json.cpp (tokenizer.json, from_dir), tokenizer_spm.cpp
// (tokenizer.model).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lmp {

struct BpeVocab;

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Loads DIR/tokenizer.json (preferred) or DIR/tokenizer.model; throws lmp::Error naming the file.
  static std::unique_ptr<Tokenizer> from_dir(const std::string& dir);
  static std::unique_ptr<Tokenizer> from_json_file(const std::string& path);
  static std::unique_ptr<Tokenizer> from_sentencepiece_model(const std::string& path);

  // ids of text; add_bos prepends bos_id() when the tokenizer has one. The text is plain text: a special
  // token's spelling in it ("<s>", "<unk>", "<|endoftext|>") is tokenized as ordinary characters, as the
  // reference tokenizer (tools/ref_llama.py) and llama.cpp's default do; WikiText contains literal "<unk>".
  // Non-special added tokens (user-defined pieces) are always matched as whole tokens.
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // Like encode, but special added tokens (<s>, <|im_start|>, ...) spelled in the text are matched as whole
  // tokens, as Hugging Face's tokenizer(text) does (chat templates).
  virtual std::vector<int> encode_with_special(std::string_view text, bool add_bos) const {
    return encode(text, add_bos);
  }
  // Text of ids; special tokens (BOS/EOS/added special) are skipped. Invalid UTF-8 byte sequences (from
  // byte tokens) become U+FFFD, as in Hugging Face's decoders.
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  // Text of one token as it continues the text of the ids before it (for streaming generation); prev_id is
  // -1 at the start. A byte token gives its raw byte, so a multi-byte character arrives in pieces.
  virtual std::string decode_piece(int prev_id, int id) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;  // -1 when none
  virtual std::string kind() const = 0;  // "sentencepiece-bpe", "byte-level-bpe", "sentencepiece-model"
  // The piece string of id as stored in the vocabulary ("▁the", "Ġthe", "<0x0A>"); "" when out of range.
  virtual std::string id_to_piece(int id) const { return ""; }
  // The vocabulary data a BPE tokenizer was built from (what a GGUF exporter writes as tokenizer.ggml.*);
  // nullopt for tokenizers that have none (tokenizer.model through libsentencepiece).
  virtual std::optional<BpeVocab> vocab() const;
};

// ---- In-memory vocabulary (tokenizer.json and GGUF tokenizer.ggml.* both map onto this) ----

enum class BpeKind {
  SentencePiece,  // pieces spell text with ▁ for space; unknown chars fall back to <0xNN> byte pieces
  ByteLevel,      // pieces spell bytes in GPT-2's bytes_to_unicode alphabet ("Ġ" = space)
};

// SentencePiece / GGUF token type numbering (tokenizer.ggml.token_type).
enum class TokenType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

// When the SentencePiece "▁" (or the byte-level " ") is put before a text segment.
enum class PrefixSpace { Never, First, Always };  // First: only the segment at the start of the text

struct AddedToken {
  int id = -1;
  std::string content;  // matched verbatim in the raw text
  bool special = true;  // special: matched only with parse_special, skipped by decode
  bool lstrip = false, rstrip = false;  // swallow whitespace to the left / right of a match
};

// One pre-tokenizer split step (byte-level BPE): the text is cut around every match of the pattern (PCRE2,
// UTF + Unicode properties). Isolated keeps matches and the text between them as pieces; Removed drops
// the matches.
struct SplitRule {
  std::string pattern;
  bool literal = false;  // pattern is a plain string, not a regex
  bool removed = false;  // behavior Removed instead of Isolated
};

// GPT-2's pre-tokenizer regex (also ByteLevel use_regex=true) and Llama-3's (also Qwen2's up to \p{N}{1,3}
// vs \p{N}; both are just patterns here).
extern const char* const kGpt2Pattern;
extern const char* const kLlama3Pattern;

struct BpeVocab {
  BpeKind kind = BpeKind::SentencePiece;
  std::string source;               // file name used in error messages
  std::vector<std::string> tokens;  // id -> piece
  std::vector<TokenType> types;     // empty: all Normal (added tokens come from `added`)
  // Merges in rank order (rank = index). When empty, SentencePiece merging by scores is used instead:
  // two adjacent pieces a, b merge when the piece a+b exists, the pair whose merged piece has the highest
  // score first, ties to the leftmost pair -- SentencePiece's BPE rule. tokenizer.json merges of a Llama
  // vocabulary are exactly that order, so scores = -rank gives identical ids.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<float> scores;  // per token, used only when merges is empty
  std::vector<AddedToken> added;  // empty: Control tokens become special added tokens, UserDefined plain ones
  PrefixSpace prefix_space = PrefixSpace::Always;  // SentencePiece default; byte-level usually Never
  bool split_on_space = false;  // SentencePiece Metaspace split=true: BPE each ▁word separately
  bool byte_fallback = true;    // SentencePiece: chars missing from the vocab become <0xNN> pieces
  bool ignore_merges = false;   // byte-level: a pre-token that is itself a piece is emitted directly
  std::vector<SplitRule> splits;  // byte-level pre-tokenizer steps, applied in order
  int bos_id = -1, eos_id = -1, unk_id = -1;
};

// Builds a SentencePiece-BPE or byte-level BPE tokenizer; throws lmp::Error naming v.source when the data
// are inconsistent (a merge naming a missing piece, a byte-level vocab missing one of the 256 bytes, ...).
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeVocab& v);

// Parses tokenizer.json into a BpeVocab (without BOS/EOS, which come from the configs in from_dir).
BpeVocab read_tokenizer_json(const std::string& path);

}  // namespace lmp

// Tokenizer tests: stories260K reference ids (SentencePiece-style BPE), score-ranked construction from
// in-memory data, a hand-made byte-level BPE fixture (tests/data/tokenizer/), UTF-8 round trips,
// tokenizer.model via libsentencepiece, and bad inputs.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/error.h"
#include "io/tokenizer.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

const std::string kStories = LMP_SOURCE_DIR "/../shared/models/stories260K";
const std::string kData = LMP_SOURCE_DIR "/tests/data/tokenizer";

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

struct Case {
  std::string text;
  std::vector<int> ids;
};
std::vector<Case> stories_cases() {
  std::vector<Case> out;
  std::ifstream f(kStories + "/reference/tokenize.jsonl");
  for (std::string line; std::getline(f, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out.push_back({j["text"].get<std::string>(), j["ids_with_bos"].get<std::vector<int>>()});
  }
  return out;
}

struct TempDir {
  fs::path path;
  explicit TempDir(const char* name) : path(fs::temp_directory_path() / name) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& file, const std::string& text) const {
    std::ofstream(path / file, std::ios::binary) << text;
    return (path / file).string();
  }
};

// Runs f, expects an lmp::Error whose message contains every needle.
template <class F>
void expect_error(F f, std::vector<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "no lmp::Error thrown";
  } catch (const lmp::Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

#define REQUIRE_STORIES()                                                                        \
  if (!fs::exists(kStories + "/tokenizer.json")) GTEST_SKIP() << "shared model stories260K absent at " << kStories

void expect_fixture(const Tokenizer& tok) {
  auto cases = stories_cases();
  ASSERT_GE(cases.size(), 10u);
  for (const auto& c : cases) {
    EXPECT_EQ(tok.encode(c.text, true), c.ids) << "text: " << c.text;
    EXPECT_EQ(tok.decode(c.ids), c.text);
  }
}

}  // namespace

// ---- SentencePiece-style BPE (stories260K) ----

TEST(TokenizerStories, FixtureIdsAndRoundTrip) {
  REQUIRE_STORIES();
  auto tok = Tokenizer::from_dir(kStories);
  EXPECT_EQ(tok->kind(), "sentencepiece-bpe");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  expect_fixture(*tok);
}

TEST(TokenizerStories, EncodeEvalTextSpeed) {
  REQUIRE_STORIES();
  std::string path = LMP_SOURCE_DIR "/../shared/data/tinystories/eval.txt";
  if (!fs::exists(path)) GTEST_SKIP() << "eval text absent at " << path;
  auto tok = Tokenizer::from_dir(kStories);
  std::string text = slurp(path);
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok->encode(text, true);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ timing ] encode %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", text.size(), ids.size(), s,
              text.size() / s / 1e6);
  EXPECT_EQ(tok->decode(ids), text);
  auto bl = Tokenizer::from_dir(kData + "/bytelevel");  // GPT-2 regex dominates: the fixture has few merges
  t0 = std::chrono::steady_clock::now();
  ids = bl->encode(text, false);
  s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ timing ] byte-level: %zu bytes -> %zu tokens in %.3f s\n", text.size(), ids.size(), s);
  EXPECT_EQ(bl->decode(ids), text);
}

// Same ids when the Llama vocabulary is given as GGUF-style data: pieces + scores (-rank of the merge that
// makes each piece) + token types, no merges list (SentencePiece's highest-score-first rule).
TEST(TokenizerStories, ScoreRankedConstructionMatchesMerges) {
  REQUIRE_STORIES();
  BpeVocab v = read_tokenizer_json(kStories + "/tokenizer.json");
  std::map<std::string, int> first_rank;
  for (size_t r = 0; r < v.merges.size(); r++)
    first_rank.emplace(v.merges[r].first + v.merges[r].second, int(r));
  v.scores.assign(v.tokens.size(), -1e9f);
  v.types.assign(v.tokens.size(), TokenType::Normal);
  for (size_t i = 0; i < v.tokens.size(); i++) {
    if (auto it = first_rank.find(v.tokens[i]); it != first_rank.end()) v.scores[i] = -float(it->second);
    if (v.tokens[i].size() == 6 && v.tokens[i].rfind("<0x", 0) == 0) v.types[i] = TokenType::Byte;
  }
  v.types[0] = TokenType::Unknown;
  v.types[1] = v.types[2] = TokenType::Control;
  v.merges.clear();
  v.added.clear();  // GGUF has none: control/user-defined types stand for them
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  auto tok = make_bpe_tokenizer(v);
  expect_fixture(*tok);
}

// ---- byte-level BPE: hand-made fixture tests/data/tokenizer/bytelevel ----
//
// Vocabulary: ids 0..255 are the 256 one-byte pieces in GPT-2's alphabet, id = byte value (so "a" = 97,
// space "Ġ" = 32, newline "Ċ" = 10); merge rank r makes piece 256 + r:
//   r0 Ġt 256   r1 he 257   r2 Ġthe 258  r3 Ġc 259   r4 at 260   r5 Ġcat 261  r6 's 262   r7 ĠĠ 263
//   r8 ĠĠĠĠ 264 r9 ĊĊ 265   r10 12 266   r11 123 267 r12 Ġ4 268  r13 é("Ã©") 269   r14 ca 270
//   r15 fé 271  r16 café 272 r17 "ä¸" 273 r18 中("ä¸Ń") 274  r19 "ðŁ" 275  r20 "ðŁĻ" 276  r21 🙂 277
//   r22 ll 278  r23 Ġw 279  r24 or 280   r25 Ġwor 281 r26 ld 282  r27 Ġworld 283 r28 He 284 r29 Hell 285
//   r30 Hello 286  r31 'S 287;  "hat" 288 (in the vocab, made by no merge);  <|endoftext|> 289 (special).
// UTF-8 in that alphabet: é = C3 A9 = "Ã©"; 中 = E4 B8 AD = "ä¸Ń" (0xAD is not printable -> U+0143);
// 🙂 = F0 9F 99 82 = "ðŁĻĤ". Pre-tokenizer: ByteLevel(use_regex) = GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Each pre-token merges lowest rank first, ties to the left. Derivations:
//   "Hello world": "Hello" H e l l o: ll(r22) < He(r28) -> H e ll o -> He ll o -> Hell o -> Hello = 286;
//     " world" Ġ w o r l d: Ġw(r23), or(r24), Ġwor(r25), ld(r26), Ġworld(r27) = 283.
//   "the cat's hat": "the" -> t he (no "t he" merge) = 116 257; " cat": Ġc(r3) before at(r4), then
//     Ġc at(r5) = 261 (ca(r14) never gets its turn); "'s" = 262; " hat": only at(r4) -> 32 104 260.
//   "the  the": \s+(?!\S) backs off to the first space, so " " = 32 and " the" = Ġt(r0) he(r1) Ġthe(r2) 258.
//   "a     b": "a", 4 spaces (the 5th joins "b"): ĠĠ at 0 and 2 (r7, leftmost first) then ĠĠĠĠ(r8) = 264,
//     " b" = 32 98.
//   "x\n\ny": "\n" then "\n" (the lookahead rejects "\n\n" before "y"): 120 10 10 121.
//   "x\n\n": "\n\n" ends the text, so ĊĊ = 265.
//   "12345 4": " ?\p{N}+" takes "12345": 12(r10) 123(r11) 4 5 -> 267 52 53; " 4" = Ġ4(r12) 268.
//   "café 中": "café" c a f Ã ©: é(r13) first, then ca(r14) < fé(r15), then café(r16) = 272;
//     " 中" Ġ ä ¸ Ń -> ä¸(r17) -> 中(r18): 32 274.
//   "hi 🙂!": "hi" = 104 105; " 🙂!" is one " ?[^\s\p{L}\p{N}]+" piece: Ġ ðŁ(r19) ðŁĻ(r20) 🙂(r21) ! -> 32 277 33.
//   "IT'S": "IT", "'" , "S" (GPT-2's contractions are lower case only) = 73 84 39 83.
//   "1234512": 12 at 0 and at 5 (r10, leftmost first), 123(r11) -> 267 52 53 266.
//   "hat": h at(r4) = 104 260 (the piece "hat" is unreachable by merges).
struct ByteCase {
  const char* text;
  std::vector<int> ids;
};
const std::vector<ByteCase> kGpt2Cases = {
    {"", {}},
    {"Hello world", {286, 283}},
    {"the cat's hat", {116, 257, 261, 262, 32, 104, 260}},
    {"the  the", {116, 257, 32, 258}},
    {"a     b", {97, 264, 32, 98}},
    {"x\n\ny", {120, 10, 10, 121}},
    {"x\n\n", {120, 265}},
    {"12345 4", {267, 52, 53, 268}},
    {"caf\xC3\xA9 \xE4\xB8\xAD", {272, 32, 274}},
    {"hi \xF0\x9F\x99\x82!", {104, 105, 32, 277, 33}},
    {"IT'S", {73, 84, 39, 83}},
    {"1234512", {267, 52, 53, 266}},
    {"hat", {104, 260}},
};

TEST(TokenizerByteLevel, HandFixtureIds) {
  auto tok = Tokenizer::from_dir(kData + "/bytelevel");
  EXPECT_EQ(tok->kind(), "byte-level-bpe");
  EXPECT_EQ(tok->vocab_size(), 290);
  EXPECT_EQ(tok->bos_id(), 289);  // tokenizer_config.json bos_token "<|endoftext|>"
  EXPECT_EQ(tok->eos_id(), 289);
  for (const auto& c : kGpt2Cases) {
    EXPECT_EQ(tok->encode(c.text, false), c.ids) << "text: " << c.text;
    EXPECT_EQ(tok->decode(c.ids), c.text);
  }
  EXPECT_EQ(tok->encode("hat", true), (std::vector<int>{289, 104, 260}));
  EXPECT_EQ(tok->id_to_piece(258), "\xC4\xA0the");  // "Ġthe"
}

// "the<|endoftext|> cat": plain encode spells the special token with bytes ("<|", "endoftext", "|>" --
// no merges apply); encode_with_special matches it: "the" 116 257, 289, " cat" 261. decode skips it.
TEST(TokenizerByteLevel, SpecialTokens) {
  auto tok = Tokenizer::from_dir(kData + "/bytelevel");
  std::string text = "the<|endoftext|> cat";
  EXPECT_EQ(tok->encode_with_special(text, false), (std::vector<int>{116, 257, 289, 261}));
  EXPECT_EQ(tok->encode(text, false),
            (std::vector<int>{116, 257, 60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124, 62, 261}));
  EXPECT_EQ(tok->decode({116, 257, 289, 261}), "the cat");
  EXPECT_EQ(tok->decode_piece(257, 289), "");
  EXPECT_EQ(tok->decode_piece(289, 261), " cat");
}

// Llama-3 style: Split(kLlama3Pattern, Isolated) + ByteLevel(use_regex=false), ignore_merges=true.
//   "x\n\ny": "\s*[\r\n]+" takes "\n\n" -> ĊĊ 265.    "IT'S": (?i:'s) -> "IT", "'S" = 73 84 287.
//   "1234512": \p{N}{1,3} -> "123" 267, "451" 52 53 49, "2" 50.
//   "12345 4": "123", "45", then " " alone (no pattern puts a space before digits) and "4": 267 52 53 32 52.
//   "hat": ignore_merges emits the piece "hat" = 288 directly; " hat" (Ġhat is no piece) merges: 32 104 260.
TEST(TokenizerByteLevel, Llama3SplitAndIgnoreMerges) {
  auto j = nlohmann::json::parse(slurp(kData + "/bytelevel/tokenizer.json"));
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         {{{"type", "Split"}, {"pattern", {{"Regex", kLlama3Pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  j["model"]["ignore_merges"] = true;
  fs::path dir = fs::temp_directory_path() / "lmp_test_tok_llama3";
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << j.dump();
  auto tok = Tokenizer::from_json_file((dir / "tokenizer.json").string());
  const std::vector<ByteCase> cases = {
      {"x\n\ny", {120, 265, 121}},        {"IT'S", {73, 84, 287}},  {"1234512", {267, 52, 53, 49, 50}},
      {"12345 4", {267, 52, 53, 32, 52}}, {"hat", {288}},           {" hat", {32, 104, 260}},
      {"Hello world", {286, 283}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(tok->encode(c.text, false), c.ids) << "text: " << c.text;
    EXPECT_EQ(tok->decode(c.ids), c.text);
  }
  fs::remove_all(dir);
}

namespace {
// Random valid UTF-8: ASCII (letters, digits, punctuation, whitespace runs), Latin-1, Cyrillic,
// combining marks, CJK, emoji and other astral code points.
std::string random_utf8(std::mt19937& rng, int n) {
  static const std::pair<char32_t, char32_t> ranges[] = {
      {0x20, 0x7E}, {0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xFF}, {0x400, 0x4FF}, {0x300, 0x36F},
      {0x4E00, 0x4FFF}, {0x3040, 0x30FF}, {0x1F300, 0x1F6FF}, {0x10000, 0x10FFFF}, {0xE000, 0xF8FF}};
  std::string s;
  for (int i = 0; i < n; i++) {
    auto [lo, hi] = ranges[rng() % std::size(ranges)];
    char32_t cp = lo + rng() % (hi - lo + 1);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

std::string concat_pieces(const Tokenizer& tok, const std::vector<int>& ids) {
  std::string out;
  int prev = -1;
  for (int id : ids) out += tok.decode_piece(prev, id), prev = id;
  return out;
}
}  // namespace

TEST(TokenizerByteLevel, RoundTripRandomText) {
  auto tok = Tokenizer::from_dir(kData + "/bytelevel");
  std::mt19937 rng(1234);
  for (int it = 0; it < 300; it++) {
    std::string s = random_utf8(rng, 1 + rng() % 40);
    auto ids = tok->encode(s, false);
    ASSERT_EQ(tok->decode(ids), s);
    ASSERT_EQ(concat_pieces(*tok, ids), s);
  }
}

// Arbitrary bytes (invalid UTF-8 included) survive byte-level BPE exactly through decode_piece; decode
// replaces invalid sequences with U+FFFD.
TEST(TokenizerByteLevel, ArbitraryBytes) {
  auto tok = Tokenizer::from_dir(kData + "/bytelevel");
  std::mt19937 rng(99);
  for (int it = 0; it < 300; it++) {
    std::string s;
    for (int i = 0, n = 1 + rng() % 30; i < n; i++) s += char(rng() % 256);
    ASSERT_EQ(concat_pieces(*tok, tok->encode(s, false)), s);
  }
  EXPECT_EQ(tok->decode(tok->encode("a\xFF" "b\xE4\xB8", false)), "a\xEF\xBF\xBD" "b\xEF\xBF\xBD");
}

TEST(TokenizerStories, RoundTripRandomText) {
  REQUIRE_STORIES();
  auto tok = Tokenizer::from_dir(kStories);
  std::mt19937 rng(4321);
  for (int it = 0; it < 300; it++) {
    std::string s = random_utf8(rng, 1 + rng() % 40);
    auto ids = tok->encode(s, true);
    ASSERT_EQ(tok->decode(ids), s);
    ASSERT_EQ(concat_pieces(*tok, ids), s);
  }
}

// ---- tokenizer.model through libsentencepiece ----
// tests/data/tokenizer/spmodel/tokenizer.model: a 400-piece BPE model with byte fallback, trained by
// spm_train (Debian package sentencepiece) on 400 random sentences over a 40-word lower-case list:
//   spm_train --model_type=bpe --vocab_size=400 --byte_fallback=true --character_coverage=1.0
//     --normalization_rule_name=identity --remove_extra_whitespaces=false --bos_id=1 --eos_id=2 --unk_id=0
// Expected ids from spm_encode --output_format=id (pieces: ▁ H e llo ▁world; ▁T he ▁cat ▁sat ▁on ▁the ▁mat .).
TEST(TokenizerSentencePieceModel, FromDirWithoutJson) {
  auto tok = Tokenizer::from_dir(kData + "/spmodel");
  EXPECT_EQ(tok->kind(), "sentencepiece-model");
  EXPECT_EQ(tok->vocab_size(), 400);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->encode("Hello world", true), (std::vector<int>{1, 359, 389, 361, 291, 311}));
  EXPECT_EQ(tok->encode("The cat sat on the mat.", false), (std::vector<int>{347, 260, 318, 320, 275, 261, 326, 377}));
  std::mt19937 rng(5);
  for (int it = 0; it < 200; it++) {
    std::string s = random_utf8(rng, 1 + rng() % 30);
    auto ids = tok->encode(s, true);
    ASSERT_EQ(tok->decode(ids), s);
    ASSERT_EQ(concat_pieces(*tok, ids), s);
  }
}

// The same model's pieces, scores and types given to make_bpe_tokenizer (the GGUF route: no merges, SPM
// score ranking) must reproduce libsentencepiece's ids on random text over the training words.
TEST(TokenizerSentencePieceModel, ScoreRankedBpeMatchesLibSentencePiece) {
  std::string model = kData + "/spmodel/tokenizer.model";
  auto ref = Tokenizer::from_sentencepiece_model(model);
  BpeVocab v;
  v.source = model;
  for (int i = 0; i < ref->vocab_size(); i++) v.tokens.push_back(ref->id_to_piece(i));
  // Types and scores as GGUF stores them: specials 0..2, bytes 3..258, then normal pieces whose spm_train
  // score is -(index among normal pieces), i.e. decreasing with id.
  v.types.assign(v.tokens.size(), TokenType::Normal);
  v.scores.assign(v.tokens.size(), 0.f);
  v.types[0] = TokenType::Unknown, v.types[1] = v.types[2] = TokenType::Control;
  for (size_t i = 3; i < v.tokens.size(); i++) {
    if (v.tokens[i].size() == 6 && v.tokens[i].rfind("<0x", 0) == 0)
      v.types[i] = TokenType::Byte;
    else
      v.scores[i] = -float(i);
  }
  v.unk_id = 0, v.bos_id = 1, v.eos_id = 2;
  auto tok = make_bpe_tokenizer(v);
  const char* words[] = {"the", "a", "cat", "dog", "sat", "on", "mat", "little", "girl", "lily", "park", "hello",
                         "world", "happy", "tree", "Once", "upon", "time", "café", "🙂", ",", ".", "  ", "\n"};
  std::mt19937 rng(11);
  for (int it = 0; it < 300; it++) {
    std::string s;
    for (int k = 0, n = 1 + rng() % 12; k < n; k++) s += std::string(k ? " " : "") + words[rng() % std::size(words)];
    ASSERT_EQ(tok->encode(s, true), ref->encode(s, true)) << "text: " << s;
    ASSERT_EQ(tok->decode(tok->encode(s, false)), s);
  }
}

// ---- bad input ----


TEST(TokenizerErrors, MissingFiles) {
  TempDir d("lmp_test_tok_missing");
  expect_error([&] { Tokenizer::from_dir(d.path.string()); }, {d.path.string(), "tokenizer.json"});
  std::string p = (d.path / "nope.json").string();
  expect_error([&] { Tokenizer::from_json_file(p); }, {p, "cannot open"});
  std::string m = (d.path / "tokenizer.model").string();
  expect_error([&] { Tokenizer::from_sentencepiece_model(m); }, {m});
}

TEST(TokenizerErrors, InvalidJson) {
  TempDir d("lmp_test_tok_badjson");
  std::string p = d.write("tokenizer.json", "{\"model\": {\"type\": \"BPE\", ");
  expect_error([&] { Tokenizer::from_dir(d.path.string()); }, {p, "invalid JSON"});
  p = d.write("tokenizer.json", "[1, 2]");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p});
  p = d.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": [1], "merges": []}})");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p});
}

TEST(TokenizerErrors, UnsupportedModelType) {
  TempDir d("lmp_test_tok_type");
  for (const char* type : {"WordPiece", "Unigram", "WordLevel"}) {
    std::string p = d.write("tokenizer.json", fmt::format(R"({{"model": {{"type": "{}", "vocab": {{"a": 0}}}}}})", type));
    expect_error([&] { Tokenizer::from_json_file(p); }, {p, type});
  }
  std::string p = d.write("tokenizer.json",
                          R"({"pre_tokenizer": {"type": "BertPreTokenizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p, "BertPreTokenizer"});
}

TEST(TokenizerErrors, InconsistentVocab) {
  TempDir d("lmp_test_tok_vocab");
  std::string p = d.write("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a c"]}})");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p, "merge 0"});
  // Byte-level vocabulary without the 256 byte pieces.
  p = d.write("tokenizer.json",
              R"({"pre_tokenizer": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p, "byte"});
  p = d.write("tokenizer.json",
              R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}, "behavior": "Isolated"},
                  "decoder": {"type": "ByteLevel"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  expect_error([&] { Tokenizer::from_json_file(p); }, {p, "pattern"});
}

// Older / newer Llama tokenizer.json forms: no normalizer, Metaspace pre-tokenizer (add_prefix_space or
// prepend_scheme, split=false) must give the same ids as Sequence[Prepend ▁, Replace ' ' -> ▁].
TEST(TokenizerStories, MetaspaceFormsGiveSameIds) {
  REQUIRE_STORIES();
  auto j = nlohmann::json::parse(slurp(kStories + "/tokenizer.json"));
  j["normalizer"] = nullptr;
  TempDir d("lmp_test_tok_metaspace");
  for (auto meta : {nlohmann::json{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", true}, {"split", false}},
                    nlohmann::json{{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", false}}}) {
    j["pre_tokenizer"] = meta;
    auto tok = Tokenizer::from_json_file(d.write("tokenizer.json", j.dump()));
    expect_fixture(*tok);
  }
  // split=true BPEs each ▁word on its own: "▁▁" (two spaces) can no longer merge, text still round-trips.
  j["pre_tokenizer"]["split"] = true;
  auto tok = Tokenizer::from_json_file(d.write("tokenizer.json", j.dump()));
  for (const auto& c : stories_cases()) EXPECT_EQ(tok->decode(tok->encode(c.text, true)), c.text);
}

// Special tokens spelled in the text: plain encode treats "<s>" as characters (like the reference);
// encode_with_special matches it, and the Prepend normalizer applies to each text segment (HF legacy).
TEST(TokenizerStories, EncodeWithSpecial) {
  REQUIRE_STORIES();
  auto tok = Tokenizer::from_dir(kStories);
  auto hello = tok->encode("Hello", false);
  auto with = tok->encode_with_special("<s>Hello</s>", false);
  std::vector<int> want{1};
  want.insert(want.end(), hello.begin(), hello.end());
  want.push_back(2);
  EXPECT_EQ(with, want);
  auto plain = tok->encode("<s>Hello</s>", false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(tok->decode(plain), "<s>Hello</s>");
  EXPECT_EQ(tok->decode(with), "Hello");
}

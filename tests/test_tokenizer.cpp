// Tokenizer tests: stories260K reference ids (SentencePiece-style BPE), score-ranked construction from
// in-memory data, a hand-made byte-level BPE fixture (tests/data/tokenizer/), UTF-8 round trips,
// tokenizer.model via libsentencepiece, and bad inputs.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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
}

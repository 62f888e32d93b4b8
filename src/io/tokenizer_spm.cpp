// tokenizer.model (SentencePiece ModelProto) through libsentencepiece: used when a checkpoint directory has
// no tokenizer.json. Encode/decode are SentencePiece's own (its normalizer, BPE or unigram, byte fallback);
// BOS/EOS are the model's bos_id/eos_id.
#include <sentencepiece_processor.h>

#include "core/error.h"
#include "io/tokenizer.h"
#include "io/tokenizer_internal.h"

namespace lmp {
namespace {

class SpModelTokenizer final : public Tokenizer {
 public:
  explicit SpModelTokenizer(const std::string& path) : path_(path) {
    auto st = sp_.Load(path);
    check(st.ok(), "{}: cannot load SentencePiece model: {}", path, st.ToString());
  }
  std::vector<int> encode(std::string_view text, bool add_bos) const override {
    std::vector<int> ids;
    if (add_bos && sp_.bos_id() >= 0) ids.push_back(sp_.bos_id());
    std::vector<int> body;
    auto st = sp_.Encode(text, &body);
    check(st.ok(), "{}: SentencePiece encode failed: {}", path_, st.ToString());
    ids.insert(ids.end(), body.begin(), body.end());
    return ids;
  }
  std::string decode(const std::vector<int>& ids) const override {
    for (int id : ids) check_id(id);
    std::string out;
    auto st = sp_.Decode(ids, &out);  // skips control tokens, fuses byte pieces, strips the leading space
    check(st.ok(), "{}: SentencePiece decode failed: {}", path_, st.ToString());
    return tok::sanitize_utf8(out);
  }
  std::string decode_piece(int prev_id, int id) const override;
  int vocab_size() const override { return sp_.GetPieceSize(); }
  int bos_id() const override { return sp_.bos_id(); }
  int eos_id() const override { return sp_.eos_id(); }
  std::string kind() const override { return "sentencepiece-model"; }
  std::string id_to_piece(int id) const override {
    return id >= 0 && id < vocab_size() ? sp_.IdToPiece(id) : std::string();
  }
  // Pieces, scores and types as a SentencePiece-BPE vocabulary (what llama.cpp's "llama" tokenizer uses).
  std::optional<BpeVocab> vocab() const override {
    BpeVocab v;
    v.source = path_;
    for (int i = 0; i < vocab_size(); i++) {
      v.tokens.push_back(sp_.IdToPiece(i));
      v.scores.push_back(sp_.GetScore(i));
      v.types.push_back(sp_.IsUnknown(i) ? TokenType::Unknown : sp_.IsControl(i) ? TokenType::Control
                        : sp_.IsByte(i) ? TokenType::Byte : sp_.IsUnused(i) ? TokenType::Unused : TokenType::Normal);
    }
    v.bos_id = sp_.bos_id(), v.eos_id = sp_.eos_id(), v.unk_id = sp_.unk_id();
    return v;
  }

 private:
  void check_id(int id) const {
    check(id >= 0 && id < vocab_size(), "{}: token id {} outside the vocabulary of {}", path_, id, vocab_size());
  }
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

// Piece text with ▁ -> space; byte pieces give their byte; control/unknown nothing; the leading space of
// the first piece after the start or BOS is dropped (as SentencePiece's decoder does).
std::string SpModelTokenizer::decode_piece(int prev_id, int id) const {
  check_id(id);
  if (sp_.IsControl(id) || sp_.IsUnknown(id)) return {};
  const std::string& p = sp_.IdToPiece(id);
  if (sp_.IsByte(id)) return std::string(1, char(std::stoi(p.substr(3, 2), nullptr, 16)));
  std::string out = tok::meta_to_space(p);
  bool at_start = prev_id < 0 || prev_id == sp_.bos_id() || (prev_id < vocab_size() && sp_.IsControl(prev_id));
  if (at_start && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece_model(const std::string& path) {
  return std::make_unique<SpModelTokenizer>(path);
}

}  // namespace lmp

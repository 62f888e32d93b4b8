// Tokenizers of Hugging Face checkpoints: SentencePiece-style BPE with byte fallback (Llama-2, TinyLlama,
// llama2.c) and byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM) from tokenizer.json; tokenizer.model
// (SentencePiece protobuf) through libsentencepiece. Encode/decode match the reference tokenizers' ids.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmp {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Loads DIR/tokenizer.json (preferred) or DIR/tokenizer.model; throws lmp::Error naming the file.
  static std::unique_ptr<Tokenizer> from_dir(const std::string& dir);
  static std::unique_ptr<Tokenizer> from_json_file(const std::string& path);

  // ids of text; add_bos prepends bos_id() when the tokenizer has one.
  virtual std::vector<int> encode(std::string_view text, bool add_bos) const = 0;
  // Text of ids; special tokens (BOS/EOS/added special) are skipped.
  virtual std::string decode(const std::vector<int>& ids) const = 0;
  // Text of one token as it continues the text of the ids before it (for streaming generation).
  virtual std::string decode_piece(int prev_id, int id) const = 0;
  virtual int vocab_size() const = 0;
  virtual int bos_id() const = 0;  // -1 when none
  virtual int eos_id() const = 0;  // -1 when none
  virtual std::string kind() const = 0;  // "sentencepiece-bpe", "byte-level-bpe", "sentencepiece-model"
};

}  // namespace lmp

// Evaluation / calibration text → token stream, in the protocols of models/README.md:
//   text     — the whole file as one string, encoded once, one BOS at the start;
//   docs     — split on "<|endoftext|>", each piece stripped of ASCII whitespace, empty pieces skipped,
//              each encoded with its own BOS, concatenated (llama2.c's TinyStories pre-tokenization);
//   wikitext — GPTQ's WikiText-2 protocol: the file's lines (newline kept) joined with "\n\n", then as text;
//   c4-json  — JSON lines with a "text" field, each record encoded as a doc.
// A leading UTF-8 BOM is dropped in every format.
#pragma once
#include <string>
#include <vector>

#include "io/tokenizer.h"

namespace lmp {

enum class TextFormat { Text, Docs, WikiText, C4Json };
TextFormat parse_text_format(const std::string& s);  // throws lmp::Error listing the choices
const char* text_format_name(TextFormat f);

std::vector<int> tokenize_file(const Tokenizer& tok, const std::string& path, TextFormat fmt);
std::vector<int> tokenize_text(const Tokenizer& tok, const std::string& text, TextFormat fmt,
                               const std::string& path_for_errors = "<text>");

}  // namespace lmp

// tokenizer.json (Hugging Face `tokenizers` serialization) -> BpeVocab, and Tokenizer::from_dir /
// from_json_file, which also resolve BOS/EOS from tokenizer_config.json / config.json.
//
// Accepted: model.type "BPE" (vocab, merges as "a b" strings or [a, b] pairs, byte_fallback, ignore_merges,
// unk_token); normalizer null, NFC/NFKC (accepted but not applied: inputs are assumed normalized),
// Prepend "▁" and Replace " " -> "▁" (alone or in a Sequence); pre_tokenizer null, Metaspace
// (add_prefix_space or prepend_scheme, split), ByteLevel (add_prefix_space, use_regex), Split (Regex or
// String pattern, behavior Isolated or Removed, invert false), Digits, or a Sequence of these. Anything else
// is an lmp::Error naming the file, rather than silently different ids. The flavour is byte-level when a
// ByteLevel pre-tokenizer or decoder is present, else SentencePiece-style.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/tokenizer.h"

namespace lmp {
namespace {

using json = nlohmann::json;
const char kMeta[] = "\xE2\x96\x81";  // ▁

json read_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  check(bool(f), "{}: cannot open file", path);
  std::stringstream ss;
  ss << f.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::exception& e) {
    fail("{}: invalid JSON: {}", path, e.what());
  }
}

std::string str_or(const json& j, const char* key, const std::string& dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}
bool bool_or(const json& j, const char* key, bool dflt) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

bool has_type(const json& j, const std::string& type) {
  if (!j.is_object()) return false;
  if (str_or(j, "type", "") == type) return true;
  for (const char* list : {"normalizers", "pretokenizers", "decoders"})
    if (j.contains(list))
      for (const auto& e : j[list])
        if (has_type(e, type)) return true;
  return false;
}

void read_model(const json& m, const std::string& path, BpeVocab* v) {
  std::string type = str_or(m, "type", m.contains("merges") ? "BPE" : "");
  check(type == "BPE", "{}: unsupported tokenizer model type '{}' (only BPE is supported)", path, type);
  const json& vocab = m.at("vocab");
  check(vocab.is_object(), "{}: model.vocab is not an object", path);
  for (const auto& [piece, id] : vocab.items()) {
    int i = id.get<int>();
    check(i >= 0 && i < (1 << 24), "{}: vocab id {} of '{}' out of range", path, i, piece);
    if (size_t(i) >= v->tokens.size()) v->tokens.resize(i + 1);
    v->tokens[i] = piece;
  }
  for (const auto& mg : m.value("merges", json::array())) {
    if (mg.is_string()) {
      auto s = mg.get<std::string>();
      auto sp = s.find(' ');
      check(sp != std::string::npos, "{}: merge '{}' is not two pieces separated by a space", path, s);
      v->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      check(mg.is_array() && mg.size() == 2, "{}: merge {} is not a pair", path, mg.dump());
      v->merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
    }
  }
  v->byte_fallback = bool_or(m, "byte_fallback", false);
  v->ignore_merges = bool_or(m, "ignore_merges", false);
  if (m.contains("unk_token") && m["unk_token"].is_string() && vocab.contains(m["unk_token"].get<std::string>()))
    v->unk_id = vocab[m["unk_token"].get<std::string>()].get<int>();
}

void read_normalizer(const json& n, const std::string& path, BpeVocab* v) {
  if (n.is_null()) return;
  std::string type = str_or(n, "type", "");
  if (type == "Sequence") {
    for (const auto& e : n.at("normalizers")) read_normalizer(e, path, v);
  } else if (type == "Prepend") {
    check(str_or(n, "prepend", "") == kMeta, "{}: Prepend normalizer with '{}' (only ▁)", path, str_or(n, "prepend", ""));
    v->prefix_space = PrefixSpace::Always;
  } else if (type == "Replace") {
    bool ok = n.at("pattern").value("String", "") == " " && str_or(n, "content", "") == kMeta;
    check(ok, "{}: Replace normalizer other than ' ' -> ▁ is not supported", path);
  } else if (type != "NFC" && type != "NFKC") {
    fail("{}: unsupported normalizer type '{}'", path, type);
  }
}

void read_metaspace(const json& p, const std::string& path, BpeVocab* v) {
  check(str_or(p, "replacement", kMeta) == kMeta, "{}: Metaspace replacement other than ▁", path);
  std::string scheme = str_or(p, "prepend_scheme", bool_or(p, "add_prefix_space", true) ? "always" : "never");
  v->prefix_space = scheme == "first" ? PrefixSpace::First : scheme == "never" ? PrefixSpace::Never : PrefixSpace::Always;
  v->split_on_space = bool_or(p, "split", true);
}

void read_pre_tokenizer(const json& p, const std::string& path, BpeVocab* v) {
  if (p.is_null()) return;
  std::string type = str_or(p, "type", "");
  if (type == "Sequence") {
    for (const auto& e : p.at("pretokenizers")) read_pre_tokenizer(e, path, v);
  } else if (type == "Metaspace") {
    read_metaspace(p, path, v);
  } else if (type == "ByteLevel") {
    if (bool_or(p, "add_prefix_space", false)) v->prefix_space = PrefixSpace::Always;
    if (bool_or(p, "use_regex", true)) v->splits.push_back({kGpt2Pattern, false, false});
  } else if (type == "Digits") {
    v->splits.push_back({bool_or(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", false, false});
  } else if (type == "Split") {
    std::string behavior = str_or(p, "behavior", "");
    check(behavior == "Isolated" || behavior == "Removed", "{}: Split behavior '{}' is not supported", path, behavior);
    check(!bool_or(p, "invert", false), "{}: Split with invert=true is not supported", path);
    const json& pat = p.at("pattern");
    bool literal = pat.contains("String");
    v->splits.push_back({pat.at(literal ? "String" : "Regex").get<std::string>(), literal, behavior == "Removed"});
  } else {
    fail("{}: unsupported pre_tokenizer type '{}'", path, type);
  }
}

void read_added(const json& added, const std::string& path, BpeVocab* v) {
  for (const auto& a : added) {
    AddedToken t;
    t.id = a.at("id").get<int>();
    t.content = a.at("content").get<std::string>();
    t.special = bool_or(a, "special", false);
    t.lstrip = bool_or(a, "lstrip", false);
    t.rstrip = bool_or(a, "rstrip", false);
    check(t.id >= 0 && t.id < (1 << 24), "{}: added token '{}' has id {}", path, t.content, t.id);
    if (size_t(t.id) >= v->tokens.size()) v->tokens.resize(t.id + 1);
    if (v->tokens[t.id].empty()) v->tokens[t.id] = t.content;
    v->added.push_back(std::move(t));
  }
}

// Id of a config entry: an id, a token string, or {"content": token}; -1 when absent or unknown.
int token_id_of(const json& j, const BpeVocab& v) {
  if (j.is_array() && !j.empty()) return token_id_of(j[0], v);
  if (j.is_number_integer()) return j.get<int>();
  std::string s = j.is_string() ? j.get<std::string>() : j.is_object() ? str_or(j, "content", "") : "";
  if (s.empty()) return -1;
  for (const auto& t : v.added)
    if (t.content == s) return t.id;
  for (size_t i = 0; i < v.tokens.size(); i++)
    if (v.tokens[i] == s) return int(i);
  return -1;
}

// BOS/EOS: tokenizer_config.json's bos_token/eos_token, else config.json's bos_token_id/eos_token_id, else
// the first added token spelled like a known BOS/EOS.
void resolve_special_ids(const std::string& dir, BpeVocab* v) {
  auto from_file = [&](const std::string& file, const char* key, int* id) {
    std::string p = dir + "/" + file;
    if (*id >= 0 || !std::filesystem::exists(p)) return;
    json j = read_json(p);
    if (j.is_object() && j.contains(key)) *id = token_id_of(j[key], *v);
  };
  from_file("tokenizer_config.json", "bos_token", &v->bos_id);
  from_file("tokenizer_config.json", "eos_token", &v->eos_id);
  from_file("config.json", "bos_token_id", &v->bos_id);
  from_file("config.json", "eos_token_id", &v->eos_id);
  for (const char* name : {"<s>", "<|begin_of_text|>", "<|endoftext|>"})
    if (v->bos_id < 0) v->bos_id = token_id_of(name, *v);
  for (const char* name : {"</s>", "<|end_of_text|>", "<|endoftext|>"})
    if (v->eos_id < 0) v->eos_id = token_id_of(name, *v);
  int n = int(v->tokens.size());
  if (v->bos_id >= n) v->bos_id = -1;
  if (v->eos_id >= n) v->eos_id = -1;
}

}  // namespace

BpeVocab read_tokenizer_json(const std::string& path) {
  json j = read_json(path);
  BpeVocab v;
  v.source = path;
  try {
    check(j.is_object() && j.contains("model"), "{}: no 'model' object (not a tokenizer.json)", path);
    read_model(j["model"], path, &v);
    bool byte_level = has_type(j.value("pre_tokenizer", json()), "ByteLevel") || has_type(j.value("decoder", json()), "ByteLevel");
    v.kind = byte_level ? BpeKind::ByteLevel : BpeKind::SentencePiece;
    v.prefix_space = PrefixSpace::Never;  // set by Prepend / Metaspace / ByteLevel(add_prefix_space)
    read_normalizer(j.value("normalizer", json()), path, &v);
    read_pre_tokenizer(j.value("pre_tokenizer", json()), path, &v);
    read_added(j.value("added_tokens", json::array()), path, &v);
  } catch (const json::exception& e) {
    fail("{}: malformed tokenizer.json: {}", path, e.what());
  }
  for (size_t i = 0; i < v.tokens.size(); i++)
    check(!v.tokens[i].empty(), "{}: no piece has id {} (ids must be dense)", path, i);
  return v;
}

std::unique_ptr<Tokenizer> Tokenizer::from_json_file(const std::string& path) {
  BpeVocab v = read_tokenizer_json(path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  resolve_special_ids(dir.empty() ? "." : dir, &v);
  return make_bpe_tokenizer(v);
}

std::unique_ptr<Tokenizer> Tokenizer::from_dir(const std::string& dir) {
  std::string js = dir + "/tokenizer.json", model = dir + "/tokenizer.model";
  if (std::filesystem::exists(js)) return from_json_file(js);
  if (std::filesystem::exists(model)) return from_sentencepiece_model(model);
  fail("{}: no tokenizer.json or tokenizer.model in this directory", dir);
}

}  // namespace lmp

// Loaders of the shared task files (../shared/data/tasks/<name>/, formats in each SOURCE.md) into Task items
// with the prompts of lm-evaluation-harness (v0.4 task configs):
//   lambada_openai  context = text up to its last space, continuation = " " + last word
//   piqa            "Question: {goal}\nAnswer:"  →  " {sol1}" | " {sol2}"                      acc, acc_norm
//   winogrande      partial scoring: contexts "{sentence up to _}{option}", continuation " {rest after _}"
//   boolq           "{passage}\nQuestion: {question}?\nAnswer:"  →  " no" | " yes"               acc
//   arc_*           "Question: {stem}\nAnswer:"  →  " {choice}"; gold from the official answer key  acc, acc_norm
//   hellaswag       "{activity}: {ctx}" (llama.cpp's preprocessed text)  →  " {ending}"           acc, acc_norm
#include <bzlib.h>
#include <cstdio>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/tasks.h"

namespace lmp {

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {"lambada_openai", "piqa",          "winogrande", "boolq",
                                                 "arc_easy",       "arc_challenge", "hellaswag"};
  return names;
}

std::string read_bz2_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
  check(f != nullptr, "{}: cannot open", path);
  int bzerr = BZ_OK;
  BZFILE* bz = BZ2_bzReadOpen(&bzerr, f.get(), 0, 0, nullptr, 0);
  check(bzerr == BZ_OK, "{}: not a bzip2 stream (libbz2 error {})", path, bzerr);
  std::string out;
  char buf[1 << 16];
  while (bzerr == BZ_OK) {
    int n = BZ2_bzRead(&bzerr, bz, buf, sizeof buf);
    if (bzerr == BZ_OK || bzerr == BZ_STREAM_END) out.append(buf, size_t(n));
  }
  BZ2_bzReadClose(&bzerr, bz);
  check(bzerr == BZ_OK, "{}: corrupt or truncated bzip2 data", path);
  return out;
}

namespace {

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string l = text.substr(pos, end - pos);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    lines.push_back(std::move(l));
    pos = end + 1;
  }
  return lines;
}

// Non-empty lines of a JSON-lines file, parsed.
std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  auto lines = split_lines(read_file(path));
  for (size_t i = 0; i < lines.size(); i++) {
    if (lines[i].empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(lines[i]));
    } catch (const nlohmann::json::exception& e) {
      fail("{}:{}: invalid JSON ({})", path, i + 1, e.what());
    }
  }
  return out;
}

std::vector<std::string> read_label_lines(const std::string& path, size_t want) {
  std::vector<std::string> out;
  for (auto& l : split_lines(read_file(path)))
    if (!l.empty()) out.push_back(l);
  check(out.size() == want, "{}: {} labels for {} examples", path, out.size(), want);
  return out;
}

std::string field(const nlohmann::json& j, const char* key, const std::string& where) {
  check(j.is_object() && j.contains(key) && j[key].is_string(), "{}: missing string field '{}'", where, key);
  return j[key].get<std::string>();
}

TaskItem choice_item(std::string context, const std::vector<std::string>& choices, int gold) {
  TaskItem it;
  it.contexts = {std::move(context)};
  for (const auto& c : choices) {
    it.continuations.push_back(" " + c);
    it.norm_bytes.push_back(c.size());
  }
  it.gold = gold;
  return it;
}

void load_lambada(Task& t, const std::string& dir) {
  t.kind = TaskKind::LastWord;
  std::string path = dir + "/lambada_test.jsonl";
  auto rows = read_jsonl(path);
  t.lines = long(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    std::string text = field(rows[i], "text", fmt::format("{}:{}", path, i + 1));
    size_t sp = text.rfind(' ');
    check(sp != std::string::npos && sp > 0, "{}:{}: text has no space before its last word", path, i + 1);
    TaskItem it;
    it.contexts = {text.substr(0, sp)};
    it.continuations = {text.substr(sp)};
    it.norm_bytes = {text.size() - sp - 1};
    t.items.push_back(std::move(it));
  }
}

void load_piqa(Task& t, const std::string& dir) {
  t.has_acc_norm = true;
  std::string path = dir + "/valid.jsonl";
  auto rows = read_jsonl(path);
  auto labels = read_label_lines(dir + "/valid-labels.lst", rows.size());
  t.lines = long(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    std::string w = fmt::format("{}:{}", path, i + 1);
    check(labels[i] == "0" || labels[i] == "1", "{}/valid-labels.lst:{}: label '{}' is not 0/1", dir, i + 1, labels[i]);
    t.items.push_back(choice_item("Question: " + field(rows[i], "goal", w) + "\nAnswer:",
                                  {field(rows[i], "sol1", w), field(rows[i], "sol2", w)}, labels[i][0] - '0'));
  }
}

void load_winogrande(Task& t, const std::string& dir) {
  std::string path = dir + "/dev.jsonl";
  auto rows = read_jsonl(path);
  auto labels = read_label_lines(dir + "/dev-labels.lst", rows.size());
  t.lines = long(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    std::string w = fmt::format("{}:{}", path, i + 1);
    std::string s = field(rows[i], "sentence", w);
    size_t blank = s.find('_');
    check(blank != std::string::npos, "{}: sentence has no blank '_'", w);
    check(labels[i] == "1" || labels[i] == "2", "{}/dev-labels.lst:{}: label '{}' is not 1/2", dir, i + 1, labels[i]);
    std::string rest = s.substr(blank + 1);
    size_t a = rest.find_first_not_of(" \t\n"), b = rest.find_last_not_of(" \t\n");
    rest = a == std::string::npos ? "" : rest.substr(a, b - a + 1);
    TaskItem it;
    for (const char* opt : {"option1", "option2"}) {
      it.contexts.push_back(s.substr(0, blank) + field(rows[i], opt, w));
      it.continuations.push_back(" " + rest);
      it.norm_bytes.push_back(rest.size());
    }
    it.gold = labels[i][0] - '1';
    t.items.push_back(std::move(it));
  }
}

void load_boolq(Task& t, const std::string& dir) {
  std::string path = dir + "/dev.jsonl";
  auto rows = read_jsonl(path);
  t.lines = long(rows.size());
  for (size_t i = 0; i < rows.size(); i++) {
    std::string w = fmt::format("{}:{}", path, i + 1);
    check(rows[i].contains("answer") && rows[i]["answer"].is_boolean(), "{}: missing boolean field 'answer'", w);
    t.items.push_back(choice_item(field(rows[i], "passage", w) + "\nQuestion: " + field(rows[i], "question", w) +
                                      "?\nAnswer:",
                                  {"no", "yes"}, rows[i]["answer"].get<bool>() ? 1 : 0));
  }
}

void load_arc(Task& t, const std::string& dir) {
  t.has_acc_norm = true;
  std::string path = dir + "/" + t.name + ".llmfoundry.jsonl";
  std::string key_path = dir + "/question-answers.aristo-leaderboard.jsonl";
  auto rows = read_jsonl(path);
  auto keys = read_jsonl(key_path);
  check(rows.size() == keys.size(), "{}: {} answer keys for {} questions in {}", key_path, keys.size(), rows.size(),
        path);
  t.lines = long(rows.size());
  long dup = 0, fifth = 0;
  for (size_t i = 0; i < rows.size(); i++) {
    std::string w = fmt::format("{}:{}", path, i + 1);
    std::string key = field(keys[i], "answerKey", fmt::format("{}:{}", key_path, i + 1));
    check(key.size() == 1 && ((key[0] >= 'A' && key[0] <= 'E') || (key[0] >= '1' && key[0] <= '5')),
          "{}:{}: answerKey '{}' is not A-E or 1-5", key_path, i + 1, key);
    int gold = key[0] >= 'A' ? key[0] - 'A' : key[0] - '1';
    check(rows[i].contains("choices") && rows[i]["choices"].is_array(), "{}: missing array 'choices'", w);
    std::vector<std::string> choices = rows[i]["choices"].get<std::vector<std::string>>();
    // The reformatted copy padded 3-choice questions with a duplicate (order altered) and cut 5-choice
    // ones to 4: such items cannot be scored faithfully and are dropped.
    if (std::set<std::string>(choices.begin(), choices.end()).size() != choices.size()) {
      dup++;
      continue;
    }
    if (gold >= int(choices.size())) {
      fifth++;
      continue;
    }
    std::string query = field(rows[i], "query", w);  // "Question: <stem>"
    t.items.push_back(choice_item(query + "\nAnswer:", choices, gold));
  }
  t.skipped = dup + fifth;
  t.note = fmt::format("gold from the official answer key; dropped {} items padded with a duplicate choice and {} "
                       "whose answer was cut off (reformatted copy, see SOURCE.md)", dup, fifth);
}

void load_hellaswag(Task& t, const std::string& dir) {
  t.has_acc_norm = true;
  std::string path = dir + "/hellaswag_val_full.txt.bz2";
  auto lines = split_lines(read_bz2_file(path));
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  check(lines.size() % 6 == 0, "{}: {} lines, not a multiple of 6 (context, label, 4 endings)", path, lines.size());
  t.lines = long(lines.size() / 6);
  for (size_t i = 0; i + 6 <= lines.size(); i += 6) {
    const std::string& lab = lines[i + 1];
    check(lab.size() == 1 && lab[0] >= '0' && lab[0] <= '3', "{}: line {}: label '{}' is not 0-3", path, i + 2, lab);
    t.items.push_back(choice_item(lines[i], {lines[i + 2], lines[i + 3], lines[i + 4], lines[i + 5]}, lab[0] - '0'));
  }
  t.note = "llama.cpp's preprocessed text: ctx_b not capitalized as the harness does";
}

}  // namespace

Task load_task(const std::string& name, const std::string& data_dir) {
  Task t;
  t.name = name;
  std::string dir = data_dir + "/" + name;
  if (name == "lambada_openai" || name == "lambada") {
    t.name = "lambada_openai";
    load_lambada(t, data_dir + "/lambada_openai");
  } else if (name == "piqa") {
    load_piqa(t, dir);
  } else if (name == "winogrande") {
    load_winogrande(t, dir);
  } else if (name == "boolq") {
    load_boolq(t, dir);
  } else if (name == "arc_easy" || name == "arc_challenge") {
    load_arc(t, dir);
  } else if (name == "hellaswag") {
    load_hellaswag(t, dir);
  } else {
    fail("unknown task '{}' (have: lambada_openai, piqa, winogrande, boolq, arc_easy, arc_challenge, hellaswag)", name);
  }
  return t;
}

}  // namespace lmp

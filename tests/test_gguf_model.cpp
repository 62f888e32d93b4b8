// GGUF model import (model/gguf_model.h) and export (io/gguf_export.h): llama.cpp's own stories260K.gguf
// against the safetensors model (logits, greedy text, tokenizer ids), llama.cpp-quantized files, llama.cpp's
// tokenizer fixtures, export -> import round trips (f32 exact; F16/Q8_0/Q4_0/Q4_K equal to the blocks'
// dequantization; QInt codes kept exactly), perplexity of an import vs the same weights from safetensors,
// and malformed files.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mmap_file.h"
#include "eval/dataset.h"
#include "eval/perplexity.h"
#include "io/gguf.h"
#include "io/gguf_export.h"
#include "kernels/dense.h"
#include "kernels/qint.h"
#include "model/forward.h"
#include "model/generate.h"
#include "model/gguf_model.h"
#include "testutil.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

const std::string kPeers = "peers/gguf";

std::vector<float> logits_of(const Model& m, const std::vector<int>& ids) {
  Forward fw(m);
  KVCache cache(m.cfg, int(ids.size()));
  std::vector<float> out(ids.size() * size_t(m.cfg.vocab));
  fw.tokens(ids.data(), int(ids.size()), cache, out.data());
  return out;
}

std::string greedy_text(const Model& m) {
  SamplingOptions so;
  GenerateResult r = generate(m, {}, 256, so);
  return m.tokenizer().decode(r.ids);
}

std::string squash(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// A small SentencePiece vocabulary for random tiny models: <unk> <s> </s>, 256 byte pieces, ▁ + letters,
// then ▁-words, `n` tokens in all.
BpeVocab tiny_vocab(int n) {
  BpeVocab v;
  v.source = "tiny";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  for (int b = 0; b < 256; b++) {
    v.tokens.push_back(fmt::format("<0x{:02X}>", b));
    v.types.push_back(TokenType::Byte);
  }
  v.tokens.push_back("\xE2\x96\x81");
  v.types.push_back(TokenType::Normal);
  for (char c = 'a'; c <= 'z'; c++) v.tokens.push_back(std::string(1, c)), v.types.push_back(TokenType::Normal);
  for (int i = 0; int(v.tokens.size()) < n; i++) {
    v.tokens.push_back(fmt::format("\xE2\x96\x81{}{}", char('a' + i % 26), char('a' + (i / 26) % 26)));
    v.types.push_back(TokenType::Normal);
  }
  v.scores.assign(v.tokens.size(), 0.f);
  for (size_t i = 0; i < v.tokens.size(); i++) v.scores[i] = -float(i);
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  return v;
}

// Random tiny Llama whose widths are multiples of 256 (K-quants), with a tokenizer.
std::unique_ptr<Model> tiny_model(const std::string& dir, bool tied = false, const std::string& arch = "LlamaForCausalLM") {
  test::TinySpec s;
  s.hidden = 256, s.ffn = 512, s.heads = 4, s.kv_heads = 2, s.layers = 2, s.vocab = 320, s.tied = tied, s.arch = arch;
  test::write_tiny_model(dir, s);
  auto m = load_model(dir);
  m->set_tokenizer(make_bpe_tokenizer(tiny_vocab(s.vocab)));
  return m;
}

// GGUF tensor name of Linear k of block l.
std::string gguf_name(int l, int k) {
  static const char* const n[] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
  return fmt::format("blk.{}.{}.weight", l, n[k]);
}

// Dequantized GGUF tensor rows in HF row order (q/k un-permuted).
std::vector<float> file_rows_hf(const GgufFile& f, const std::string& name, const ModelConfig& c, int k) {
  const GgufTensor& t = f.tensor(name);
  std::vector<float> w = t.to_f32();
  if (k > 1) return w;
  auto perm = rope_rows_hf_from_gguf(k == 0 ? c.n_heads : c.n_kv_heads, c.head_dim);
  auto b = permute_rows(reinterpret_cast<const uint8_t*>(w.data()), size_t(t.cols()) * 4, perm);
  std::memcpy(w.data(), b.data(), b.size());
  return w;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// The docs protocol over the first max_bytes of tinystories/eval.txt.
std::vector<int> docs_ids(const Model& m, size_t max_bytes) {
  std::string text = read_file(test::shared_dir() + "/data/tinystories/eval.txt");
  if (text.size() > max_bytes) text.resize(max_bytes);
  return tokenize_text(m.tokenizer(), text, TextFormat::Docs);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// llama.cpp's stories260K.gguf

TEST(GgufImport, Stories260KLogitsEqualSafetensorsModel) {
  std::string st = LMP_REQUIRE_SHARED("models/stories260K");
  std::string gg = LMP_REQUIRE_SHARED(kPeers + "/models/stories260K.gguf");
  auto ref = nlohmann::json::parse(read_file(st + "/reference/logits.json"));
  std::vector<int> ids = ref["ids"].get<std::vector<int>>();
  auto a = load_model(st), b = load_model(gg);
  EXPECT_EQ(b->cfg.hidden, 64);
  EXPECT_EQ(b->cfg.n_kv_heads, 4);
  EXPECT_EQ(b->cfg.intermediate, 172);
  EXPECT_EQ(b->cfg.vocab, 512);
  EXPECT_FALSE(b->cfg.tie_embeddings);  // llama.cpp's file carries output.weight
  EXPECT_EQ(b->blocks[0].at(LinearKind::Q).w->format(), "f32");
  auto la = logits_of(*a, ids), lb = logits_of(*b, ids);
  EXPECT_LE(test::max_rel_diff(lb.data(), la.data(), la.size()), 1e-5);
  // and the float64 reference
  std::vector<float> r;
  for (const auto& row : ref["logits"])
    for (double x : row) r.push_back(float(x));
  EXPECT_LE(test::max_abs_diff(lb.data(), r.data(), r.size()), 1e-4);
}

TEST(GgufImport, Stories260KGreedyTextAndTokenizer) {
  std::string st = LMP_REQUIRE_SHARED("models/stories260K");
  std::string gg = LMP_REQUIRE_SHARED(kPeers + "/models/stories260K.gguf");
  auto m = load_model(gg);
  EXPECT_EQ(m->tokenizer().bos_id(), 1);
  EXPECT_EQ(m->tokenizer().eos_id(), 2);
  EXPECT_EQ(squash(greedy_text(*m)), squash(read_file(st + "/reference/generate_greedy.txt")));
  std::ifstream f(st + "/reference/tokenize.jsonl");
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    auto j = nlohmann::json::parse(line);
    std::string text = j["text"];
    EXPECT_EQ(m->tokenizer().encode(text, true), j["ids_with_bos"].get<std::vector<int>>()) << text;
    n++;
  }
  EXPECT_GT(n, 10);
}

TEST(GgufImport, QuantizedFilesLoadAndStayClose) {
  std::string dir = LMP_REQUIRE_SHARED(kPeers + "/quantized");
  std::string gg = LMP_REQUIRE_SHARED(kPeers + "/models/stories260K.gguf");
  auto f32 = load_model(gg);
  std::vector<int> ids = docs_ids(*f32, 60000);
  PplOptions o;
  o.max_windows = 16;
  o.progress = false;
  const double base = perplexity(*f32, ids, o).ppl;
  for (const char* name : {"F16", "Q6_K", "Q4_K_M", "Q2_K"}) {
    auto m = load_model(dir + "/stories260K-" + name + ".gguf");
    const double p = perplexity(*m, ids, o).ppl;
    EXPECT_TRUE(std::isfinite(p)) << name;
    EXPECT_GE(p, base * 0.99) << name;
    EXPECT_LE(p, base * 1.3) << name << " ppl " << p << " vs f32 " << base;
  }
}

// ppl of an imported (quantized) GGUF == ppl of the same weights dequantized and loaded from safetensors.
TEST(GgufImport, PplEqualsDequantizedSafetensors) {
  std::string gg = LMP_REQUIRE_SHARED(kPeers + "/quantized/stories260K-Q4_K_M.gguf");
  LMP_REQUIRE_SHARED("data/tinystories/eval.txt");
  auto m = load_model(gg);
  EXPECT_EQ(m->blocks[0].at(LinearKind::Q).w->format(), "ggml");
  // Dense copy: every Linear replaced by its dequantized values, saved and loaded through safetensors.
  auto d = load_model(gg);
  for (auto& b : d->blocks)
    for (auto& l : b.lin) l.w = std::make_unique<DenseF32>(l.out(), l.in(), l.w->dense());
  d->lm_head.w = std::make_unique<DenseF32>(d->lm_head.out(), d->lm_head.in(), d->lm_head.w->dense());
  std::string out = test::temp_dir("gguf-deq");
  save_model(*d, out + "/m");
  auto s = load_model(out + "/m");
  std::vector<int> ids = docs_ids(*m, 60000);
  PplOptions o;
  o.progress = false;
  const double a = perplexity(*m, ids, o).ppl, b = perplexity(*s, ids, o).ppl;
  // The file's q8_0 tensors run on lmpress's int8 kernels (activations quantized to int8 per block of 32, as
  // llama.cpp's own q8_0 dot does; kernels/qint.h bounds that error): 3e-4 relative here, not exact math. The
  // weights themselves are bit-equal to the file's (GgufExport.BlockTypesReimportAsTheirDequantization).
  EXPECT_NEAR(a, b, b * 1e-3);
  fs::remove_all(out);
}

// ---------------------------------------------------------------------------------------------------
// llama.cpp's tokenizer fixtures (tests/test-tokenizer-0: no BOS, strings split by __ggml_vocab_test__)

void check_fixture(const std::string& base) {
  GgufFile f(base);
  auto tok = make_bpe_tokenizer(gguf_vocab(f));
  std::string inp = read_file(base + ".inp"), out = read_file(base + ".out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t s = 0; s < inp.size();) {
    size_t e = inp.find(sep, s);
    if (e == std::string::npos) break;
    texts.push_back(inp.substr(s, e - s));
    s = e + sep.size();
  }
  std::vector<std::string> lines;
  std::istringstream os(out);
  for (std::string l; std::getline(os, l);) lines.push_back(l);
  ASSERT_EQ(texts.size(), lines.size()) << base;
  int bad = 0;
  for (size_t i = 0; i < texts.size(); i++) {
    std::vector<int> want;
    std::istringstream ls(lines[i]);
    for (int id; ls >> id;) want.push_back(id);
    auto got = tok->encode(texts[i], false);
    if (got != want) bad++;
    EXPECT_EQ(got, want) << base << " string " << i << ": '" << texts[i] << "'";
  }
  EXPECT_EQ(bad, 0) << texts.size() << " strings";
}

TEST(GgufTokenizerFixtures, LlamaSpm) { check_fixture(LMP_REQUIRE_SHARED(kPeers + "/vocab/ggml-vocab-llama-spm.gguf")); }
TEST(GgufTokenizerFixtures, Gpt2) { check_fixture(LMP_REQUIRE_SHARED(kPeers + "/vocab/ggml-vocab-gpt-2.gguf")); }

// ---------------------------------------------------------------------------------------------------
// Export

TEST(GgufExport, F32RoundTripOfStories260K) {
  std::string st = LMP_REQUIRE_SHARED("models/stories260K");
  auto a = load_model(st);
  std::string dir = test::temp_dir("gguf-f32");
  GgufExportOptions o;
  o.type = "f32";
  o.log = [](const std::string&) {};
  export_gguf(*a, dir + "/s.gguf", o);
  auto b = load_model(dir + "/s.gguf");
  EXPECT_TRUE(b->cfg.tie_embeddings);
  auto ref = nlohmann::json::parse(read_file(st + "/reference/logits.json"));
  std::vector<int> ids = ref["ids"].get<std::vector<int>>();
  auto la = logits_of(*a, ids), lb = logits_of(*b, ids);
  EXPECT_LE(test::max_rel_diff(lb.data(), la.data(), la.size()), 1e-6);
  // The q/k rows are in llama.cpp's order: the file's attn_q equals llama.cpp's own conversion.
  std::string gg = test::shared_dir() + "/" + kPeers + "/models/stories260K.gguf";
  if (test::exists(gg)) {
    GgufFile mine(dir + "/s.gguf"), theirs(gg);
    for (const char* n : {"blk.0.attn_q.weight", "blk.3.attn_k.weight", "blk.4.ffn_down.weight"})
      EXPECT_TRUE(bit_equal(mine.tensor(n).to_f32(), theirs.tensor(n).to_f32())) << n;
  }
  // Tokenizer written from tokenizer.json (merges -> scores) encodes like the original.
  std::string text = read_file(test::shared_dir() + "/data/tinystories/eval.txt").substr(0, 20000);
  EXPECT_EQ(b->tokenizer().encode(text, true), a->tokenizer().encode(text, true));
  // export of the import keeps every tensor's bytes
  export_gguf(*b, dir + "/s2.gguf", o);
  GgufFile f1(dir + "/s.gguf"), f2(dir + "/s2.gguf");
  ASSERT_EQ(f1.tensors().size(), f2.tensors().size());
  for (const auto& t : f1.tensors())
    EXPECT_EQ(std::memcmp(t.data, f2.tensor(t.name).data, t.nbytes), 0) << t.name;
  fs::remove_all(dir);
}

TEST(GgufExport, BlockTypesReimportAsTheirDequantization) {
  std::string dir = test::temp_dir("gguf-types");
  auto m = tiny_model(dir + "/tiny");
  const ModelConfig& c = m->cfg;
  const std::vector<int> ids = {1, 40, 300, 7, 100, 260, 5, 9};
  const auto ref = logits_of(*m, ids);
  struct Case {
    const char* type;
    GgmlType want;
    double tol;  // relative RMS error of the weights
  };
  for (const Case& cs : {Case{"f16", GgmlType::F16, 1e-3}, Case{"q8_0", GgmlType::Q8_0, 1e-2},
                         Case{"q4_0", GgmlType::Q4_0, 0.15}, Case{"q4_k", GgmlType::Q4_K, 0.12}}) {
    SCOPED_TRACE(cs.type);
    GgufExportOptions o;
    o.type = cs.type;
    o.log = [](const std::string&) {};
    const std::string path = dir + "/" + cs.type + ".gguf";
    export_gguf(*m, path, o);
    GgufFile f(path);
    auto r = load_model(path);
    EXPECT_EQ(r->tokenizer().encode("hello world", true), m->tokenizer().encode("hello world", true));
    for (int l = 0; l < c.n_layers; l++)
      for (int k = 0; k < kLinearsPerBlock; k++) {
        const std::string n = gguf_name(l, k);
        EXPECT_EQ(f.tensor(n).type, cs.want) << n;
        auto got = r->blocks[size_t(l)].lin[size_t(k)].w->dense();
        EXPECT_TRUE(bit_equal(got, file_rows_hf(f, n, c, k))) << n;
        // Q8_0 / Q4_0 run as lmpress's symmetric g32 int formats (same codes and scales, bit-equal values).
        const std::string want_fmt = cs.want == GgmlType::Q8_0 ? "int8_g32_sym" : cs.want == GgmlType::Q4_0 ? "int4_g32_sym"
                                   : cs.want == GgmlType::F16  ? "f16" : "ggml";
        EXPECT_EQ(r->blocks[size_t(l)].lin[size_t(k)].w->format(), want_fmt) << n;
        auto orig = m->blocks[size_t(l)].lin[size_t(k)].w->dense();
        EXPECT_LE(test::rel_rms_error(got.data(), orig.data(), got.size()), cs.tol) << n;
      }
    EXPECT_TRUE(bit_equal(r->embed, f.tensor("token_embd.weight").to_f32()));
    auto lg = logits_of(*r, ids);
    EXPECT_LE(test::rel_rms_error(lg.data(), ref.data(), ref.size()), cs.tol * 2);
  }
  fs::remove_all(dir);
}

// --type auto keeps QInt codes where a ggml type has the same math: int8 sym g32 -> Q8_0, int4 sym g32 -> Q4_0.
TEST(GgufExport, AutoKeepsSymmetricGroup32Codes) {
  std::string dir = test::temp_dir("gguf-auto");
  auto m = tiny_model(dir + "/tiny", /*tied=*/true, "Qwen2ForCausalLM");  // q/k/v biases: permuted too
  QuantGrid g8{8, true, 32}, g4{4, true, 32}, g4a{4, false, 32};
  for (auto& b : m->blocks)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      auto& l = b.lin[size_t(k)];
      const QuantGrid& g = k < 3 ? g8 : k < 6 ? g4 : g4a;
      l.w = QIntMatrix::quantize(l.out(), l.in(), l.w->dense().data(), g);
    }
  const std::string path = dir + "/auto.gguf";
  std::vector<std::string> log;
  GgufExportOptions o;
  o.log = [&](const std::string& s) { log.push_back(s); };
  GgufExportResult res = export_gguf(*m, path, o);
  EXPECT_EQ(res.tensors.size(), size_t(1 + 7 * m->cfg.n_layers));  // embedding + projections (norms unlogged)
  GgufFile f(path);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  auto r = load_model(path);
  EXPECT_TRUE(r->cfg.qkv_bias);
  for (int l = 0; l < m->cfg.n_layers; l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const std::string n = gguf_name(l, k);
      const GgmlType want = k < 3 ? GgmlType::Q8_0 : k < 6 ? GgmlType::Q4_0 : GgmlType::Q4_1;
      EXPECT_EQ(f.tensor(n).type, want) << n;
      auto mine = m->blocks[size_t(l)].lin[size_t(k)].w->dense();
      auto back = r->blocks[size_t(l)].lin[size_t(k)].w->dense();
      EXPECT_TRUE(bit_equal(back, file_rows_hf(f, n, m->cfg, k))) << n;
      if (k < 6) {
        EXPECT_TRUE(bit_equal(back, mine)) << n << ": codes kept exactly";
      }
      if (k < 3) {
        EXPECT_EQ(r->blocks[size_t(l)].lin[size_t(k)].bias, m->blocks[size_t(l)].lin[size_t(k)].bias) << n;
      }
    }
  // Logits against the same QInt values run dense (only ffn_down was re-quantized, Q4_1).
  for (auto& b : m->blocks)
    for (auto& l : b.lin) l.w = std::make_unique<DenseF32>(l.out(), l.in(), l.w->dense());
  const std::vector<int> ids = {1, 40, 300, 7, 100};
  auto a = logits_of(*m, ids), b = logits_of(*r, ids);
  EXPECT_LE(test::rel_rms_error(b.data(), a.data(), a.size()), 0.05);
  fs::remove_all(dir);
}

// stories260K's ffn_down (172 wide) does not fit 32-blocks: F16 fallback, reported.
TEST(GgufExport, RaggedWidthFallsBackToF16) {
  std::string st = LMP_REQUIRE_SHARED("models/stories260K");
  auto a = load_model(st);
  std::string dir = test::temp_dir("gguf-ragged");
  std::vector<std::string> log;
  GgufExportOptions o;
  o.type = "q4_k";
  o.log = [&](const std::string& s) { log.push_back(s); };
  export_gguf(*a, dir + "/q.gguf", o);
  GgufFile f(dir + "/q.gguf");
  EXPECT_EQ(f.tensor("blk.0.ffn_down.weight").type, GgmlType::F16);
  EXPECT_EQ(f.tensor("blk.0.ffn_up.weight").type, GgmlType::Q5_0);  // 64 wide: llama.cpp's Q4_K fallback
  EXPECT_EQ(f.get_uint("general.file_type"), 8u);                   // mostly Q5_0
  bool reported = false;
  for (const auto& s : log) reported |= s.find("ffn_down") != std::string::npos && s.find("172") != std::string::npos;
  EXPECT_TRUE(reported);
  auto b = load_model(dir + "/q.gguf");
  std::vector<int> ids = docs_ids(*b, 30000);
  PplOptions po;
  po.progress = false;
  po.max_windows = 8;
  double pa = perplexity(*a, ids, po).ppl, pb = perplexity(*b, ids, po).ppl;
  EXPECT_GT(pb, pa);
  EXPECT_LT(pb, pa * 1.2);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------------
// Bad input

namespace {

// Copies src into a writer, letting edit change keys/tensors.
void rewrite(const std::string& src, const std::string& dst,
             const std::function<void(const GgufFile&, GgufWriter&)>& before,
             const std::function<bool(const GgufTensor&, GgufWriter&)>& tensor) {
  GgufFile f(src);
  GgufWriter w;
  for (const auto& [k, v] : f.metadata()) w.set(k, v);
  before(f, w);
  for (const auto& t : f.tensors())
    if (!tensor(t, w)) w.add_tensor(t.name, t.type, t.ne, t.data, t.nbytes);
  w.write(dst);
}

void expect_error(const std::string& path, const std::string& what) {
  try {
    load_model(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << msg;
  }
}

}  // namespace

TEST(GgufImport, BadFilesNameTheFileAndProblem) {
  std::string gg = LMP_REQUIRE_SHARED(kPeers + "/models/stories260K.gguf");
  std::string dir = test::temp_dir("gguf-bad");
  auto keep = [](const GgufTensor&, GgufWriter&) { return false; };
  auto none = [](const GgufFile&, GgufWriter&) {};
  rewrite(gg, dir + "/arch.gguf", [](const GgufFile&, GgufWriter& w) { w.set_string("general.architecture", "gpt2"); }, keep);
  expect_error(dir + "/arch.gguf", "architecture 'gpt2'");
  rewrite(gg, dir + "/missing.gguf", none, [](const GgufTensor& t, GgufWriter&) { return t.name == "blk.2.ffn_up.weight"; });
  expect_error(dir + "/missing.gguf", "missing tensor 'blk.2.ffn_up.weight'");
  rewrite(gg, dir + "/shape.gguf", none, [](const GgufTensor& t, GgufWriter& w) {
    if (t.name != "blk.1.attn_k.weight") return false;
    w.add_tensor(t.name, t.type, {64, 16}, t.data, 64 * 16 * 4);
    return true;
  });
  expect_error(dir + "/shape.gguf", "blk.1.attn_k.weight");
  rewrite(gg, dir + "/tok.gguf", [](const GgufFile&, GgufWriter& w) { w.set_string("tokenizer.ggml.model", "t5"); }, keep);
  expect_error(dir + "/tok.gguf", "tokenizer.ggml.model 't5'");
  fs::remove_all(dir);
}

TEST(GgufExport, CliWritesAndEvalReadsGguf) {
  std::string st = LMP_REQUIRE_SHARED("models/stories260K");
  std::string data = LMP_REQUIRE_SHARED("data/tinystories/eval.txt");
  std::string dir = test::temp_dir("gguf-cli");
  std::string out, err;
  ASSERT_EQ(test::run_lmpress("export --format gguf --model " + st + " --type f16 -o " + dir + "/s.gguf --json", &out, &err), 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["file_type"], 1);
  EXPECT_NE(err.find("ffn_down"), std::string::npos);
  ASSERT_EQ(test::run_lmpress("generate --model " + dir + "/s.gguf --max-new-tokens 20 --temperature 0", &out, &err), 0) << err;
  EXPECT_EQ(out.substr(0, 30), read_file(st + "/reference/generate_greedy.txt").substr(0, 30));
  EXPECT_EQ(test::run_lmpress("export --format gguf --model " + st + " --type q3_k -o " + dir + "/x.gguf", &out, &err), 2);
  EXPECT_NE(err.find("--type 'q3_k'"), std::string::npos) << err;
  fs::remove_all(dir);
}

// A tokenizer.model (libsentencepiece) vocabulary exports as tokenizer.ggml.* and re-imports with the same ids.
TEST(GgufExport, SentencePieceModelTokenizerRoundTrip) {
  const std::string spm = std::string(LMP_SOURCE_DIR) + "/tests/data/tokenizer/spmodel/tokenizer.model";
  auto sp = Tokenizer::from_sentencepiece_model(spm);
  ASSERT_TRUE(sp->vocab().has_value());
  std::string dir = test::temp_dir("gguf-spm");
  test::TinySpec s;
  s.vocab = sp->vocab_size();
  test::write_tiny_model(dir + "/tiny", s);
  auto m = load_model(dir + "/tiny");
  m->set_tokenizer(Tokenizer::from_sentencepiece_model(spm));
  GgufExportOptions o;
  o.log = [](const std::string&) {};
  export_gguf(*m, dir + "/t.gguf", o);
  auto r = load_model(dir + "/t.gguf");
  for (const char* text : {"hello world", "The quick brown fox jumps over the lazy dog.", "caf\xC3\xA9 na\xC3\xAFve 12345",
                           "\xE2\x9C\x93 emoji \xF0\x9F\x98\x80 and tabs\tok"}) {
    EXPECT_EQ(r->tokenizer().encode(text, true), sp->encode(text, true)) << text;
    EXPECT_EQ(r->tokenizer().decode(sp->encode(text, false)), sp->decode(sp->encode(text, false))) << text;
  }
  fs::remove_all(dir);
}

// lmpress against ggml itself (linked from ../shared/peers/ggml): (a) every block type lmpress supports
// dequantizes bit-exactly like ggml's to_float, and lmpress's reference quantizers produce ggml's bytes;
// (b) a GGUF written by lmpress opens in ggml's gguf reader with the same keys, types, shapes and data,
// and a GGUF written by ggml opens in lmpress's reader; (c) lmpress's model export (F16/Q8_0/Q4_0/Q4_K and
// QInt codes kept) opens in ggml with the right keys, types and shapes and dequantizes identically.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <random>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"

#include "io/gguf.h"
#include "io/gguf_export.h"
#include "kernels/dense.h"
#include "kernels/qint.h"
#include "model/gguf_model.h"
#include "kernels/ggml_blocks.h"

namespace fs = std::filesystem;
using lmp::GgmlType;
using lmp::GgmlTypeTraits;

namespace {

std::string tmp_path(const std::string& name) {
  return fs::path(::testing::TempDir()) / ("lmp_gguf_ggml_" + std::to_string(::getpid()) + "_" + name);
}

// Byte offsets of the half-precision scales in one block, so random blocks get finite scales.
std::vector<size_t> f16_fields(GgmlType t) {
  using namespace lmp;
  switch (t) {
    case GgmlType::Q4_1: return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case GgmlType::Q5_1: return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case GgmlType::Q2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case GgmlType::Q3_K: return {offsetof(BlockQ3_K, d)};
    case GgmlType::Q4_K: return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case GgmlType::Q5_K: return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case GgmlType::Q6_K: return {offsetof(BlockQ6_K, d)};
    case GgmlType::F32: case GgmlType::BF16: return {};
    default: return {0};  // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS, F16: d first
  }
}

// n_blocks random blocks of type t with finite scales (and finite f32/bf16 values).
std::vector<uint8_t> random_blocks(const GgmlTypeTraits& t, size_t n_blocks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  std::vector<uint8_t> b(n_blocks * t.type_size);
  for (auto& x : b) x = uint8_t(rng());
  for (size_t i = 0; i < n_blocks; i++) {
    uint8_t* blk = b.data() + i * t.type_size;
    if (t.type == GgmlType::F32) {
      const float v = u(rng);
      std::memcpy(blk, &v, 4);
      continue;
    }
    if (t.type == GgmlType::BF16) {
      const lmp::bf16_t h = lmp::f32_to_bf16(u(rng));
      std::memcpy(blk, &h, 2);
      continue;
    }
    for (size_t off : f16_fields(t.type)) {
      const lmp::f16_t h = lmp::f32_to_f16(u(rng) * (i % 7 == 0 ? 1e-3f : 1.0f));
      std::memcpy(blk + off, &h, 2);
    }
  }
  return b;
}

const ggml_type_traits* ggml_traits_of(GgmlType t) { return ggml_get_type_traits(ggml_type(uint32_t(t))); }

// ggml's to_float; ggml has none for f32 (its values are the bytes), so that one is a copy.
void ggml_to_float(GgmlType t, const void* x, float* y, int64_t k) {
  const ggml_type_traits* g = ggml_traits_of(t);
  if (g->to_float)
    g->to_float(x, y, k);
  else if (t == GgmlType::F32)
    std::memcpy(y, x, size_t(k) * 4);
  else
    FAIL() << "ggml has no to_float for " << g->type_name;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// (a) block formats

TEST(GgmlInterop, TraitsAgreeWithGgml) {
  for (const auto& t : lmp::ggml_types()) {
    const ggml_type_traits* g = ggml_traits_of(t.type);
    EXPECT_STREQ(g->type_name, t.name);
    EXPECT_EQ(g->blck_size, t.block_size) << t.name;
    EXPECT_EQ(g->type_size, t.type_size) << t.name;
  }
}

TEST(GgmlInterop, DequantizationIsBitExact) {
  for (const auto& t : lmp::ggml_types()) {
    SCOPED_TRACE(t.name);
    const size_t n_blocks = 4096 / size_t(t.block_size) + 64;
    const int64_t k = int64_t(n_blocks) * t.block_size;
    const auto blocks = random_blocks(t, n_blocks, 11);
    std::vector<float> ours(static_cast<size_t>(k)), theirs(static_cast<size_t>(k));
    t.to_float(blocks.data(), ours.data(), k);
    ggml_to_float(t.type, blocks.data(), theirs.data(), k);
    size_t differ = 0;
    for (int64_t i = 0; i < k; i++) differ += std::memcmp(&ours[i], &theirs[i], 4) != 0;
    EXPECT_EQ(differ, 0u) << "of " << k << " values; first: " << ours[0] << " vs " << theirs[0];
  }
}

TEST(GgmlInterop, ReferenceQuantizersProduceGgmlBytes) {
  std::mt19937 rng(5);
  std::normal_distribution<float> g(0.0f, 1.0f);
  std::vector<float> x(64 * 256);
  for (size_t i = 0; i < x.size(); i++) x[i] = g(rng) * (i < 256 ? 1e-4f : 1.0f) + (i % 512 < 32 ? 3.0f : 0.0f);
  for (const auto& t : lmp::ggml_types()) {
    if (!t.from_float || !ggml_traits_of(t.type)->from_float_ref) continue;  // ggml has none for f32
    SCOPED_TRACE(t.name);
    const int64_t k = int64_t(x.size());
    std::vector<uint8_t> ours(lmp::ggml_row_size(t.type, k)), theirs(ours.size());
    t.from_float(x.data(), ours.data(), k);
    ggml_traits_of(t.type)->from_float_ref(x.data(), theirs.data(), k);
    size_t differ = 0;
    for (size_t b = 0; b < ours.size() / t.type_size; b++)
      differ += std::memcmp(ours.data() + b * t.type_size, theirs.data() + b * t.type_size, t.type_size) != 0;
    EXPECT_EQ(differ, 0u) << "blocks of " << ours.size() / t.type_size << " differ";
  }
}

// ---------------------------------------------------------------------------------------------------
// (b) files

namespace {
struct Sample {
  lmp::GgufWriter w;
  std::vector<std::pair<std::string, std::vector<uint8_t>>> tensors;  // name, bytes (3 rows of 2 blocks)
};

Sample make_sample() {
  Sample s;
  s.w.set_string("general.architecture", "llama");
  s.w.set_u32("llama.block_count", 5);
  s.w.set("i8", lmp::GgufValue::of(lmp::GgufType::I8, int8_t(-7)));
  s.w.set("u16", lmp::GgufValue::of(lmp::GgufType::U16, uint16_t(65535)));
  s.w.set("i64", lmp::GgufValue::of(lmp::GgufType::I64, int64_t(-123456789012345)));
  s.w.set("f64", lmp::GgufValue::of(lmp::GgufType::F64, 2.5e-300));
  s.w.set("flag", lmp::GgufValue::of(lmp::GgufType::BOOL, true));
  s.w.set_f32("eps", 1e-5f);
  s.w.set("tokenizer.ggml.tokens", lmp::GgufValue::strings({"<unk>", "<s>", "</s>", "▁hello"}));
  s.w.set("tokenizer.ggml.scores", lmp::GgufValue::array(lmp::GgufType::F32, std::vector<float>{0, 0, 0, -3.5f}));
  s.w.set("tokenizer.ggml.token_type", lmp::GgufValue::array(lmp::GgufType::I32, std::vector<int32_t>{2, 3, 3, 1}));
  uint32_t seed = 100;
  for (const auto& t : lmp::ggml_types()) {
    const int64_t cols = 2 * t.block_size * (t.block_size == 1 ? 16 : 1);
    auto bytes = random_blocks(t, size_t(3 * cols / t.block_size), seed++);
    const std::string name = std::string("blk.0.") + t.name + ".weight";
    s.w.add_tensor(name, t.type, {cols, 3}, bytes.data(), bytes.size());
    s.tensors.emplace_back(name, std::move(bytes));
  }
  return s;
}
}  // namespace

TEST(GgmlInterop, GgmlReadsLmpressGguf) {
  Sample s = make_sample();
  const std::string path = tmp_path("lmpress.gguf");
  s.w.write(path);

  ggml_context* ctx = nullptr;
  gguf_context* g = gguf_init_from_file(path.c_str(), {/*no_alloc=*/false, &ctx});
  ASSERT_NE(g, nullptr) << "ggml could not open " << path;
  EXPECT_EQ(gguf_get_version(g), 3u);
  EXPECT_EQ(gguf_get_n_kv(g), 11);
  EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "general.architecture")), "llama");
  EXPECT_EQ(gguf_get_val_u32(g, gguf_find_key(g, "llama.block_count")), 5u);
  EXPECT_EQ(gguf_get_val_i8(g, gguf_find_key(g, "i8")), -7);
  EXPECT_EQ(gguf_get_val_u16(g, gguf_find_key(g, "u16")), 65535);
  EXPECT_EQ(gguf_get_val_i64(g, gguf_find_key(g, "i64")), -123456789012345);
  EXPECT_EQ(gguf_get_val_f64(g, gguf_find_key(g, "f64")), 2.5e-300);
  EXPECT_TRUE(gguf_get_val_bool(g, gguf_find_key(g, "flag")));
  EXPECT_EQ(gguf_get_val_f32(g, gguf_find_key(g, "eps")), 1e-5f);
  const int64_t tok = gguf_find_key(g, "tokenizer.ggml.tokens");
  ASSERT_EQ(gguf_get_kv_type(g, tok), GGUF_TYPE_ARRAY);
  ASSERT_EQ(gguf_get_arr_type(g, tok), GGUF_TYPE_STRING);
  ASSERT_EQ(gguf_get_arr_n(g, tok), 4u);
  EXPECT_STREQ(gguf_get_arr_str(g, tok, 3), "▁hello");
  const int64_t sc = gguf_find_key(g, "tokenizer.ggml.scores");
  EXPECT_EQ(gguf_get_arr_type(g, sc), GGUF_TYPE_FLOAT32);
  EXPECT_EQ(static_cast<const float*>(gguf_get_arr_data(g, sc))[3], -3.5f);
  const int64_t tt = gguf_find_key(g, "tokenizer.ggml.token_type");
  EXPECT_EQ(gguf_get_arr_type(g, tt), GGUF_TYPE_INT32);
  EXPECT_EQ(static_cast<const int32_t*>(gguf_get_arr_data(g, tt))[0], 2);

  lmp::GgufFile ours(path);
  ASSERT_EQ(gguf_get_n_tensors(g), int64_t(s.tensors.size()));
  EXPECT_EQ(gguf_get_data_offset(g), ours.data_offset());
  for (const auto& [name, bytes] : s.tensors) {
    SCOPED_TRACE(name);
    const int64_t id = gguf_find_tensor(g, name.c_str());
    ASSERT_GE(id, 0);
    const lmp::GgufTensor& t = ours.tensor(name);
    EXPECT_EQ(uint32_t(gguf_get_tensor_type(g, id)), uint32_t(t.type));
    EXPECT_EQ(gguf_get_tensor_offset(g, id), t.offset);
    EXPECT_EQ(gguf_get_tensor_size(g, id), t.nbytes);
    const ggml_tensor* gt = ggml_get_tensor(ctx, name.c_str());
    ASSERT_NE(gt, nullptr);
    EXPECT_EQ(gt->ne[0], t.ne[0]);
    EXPECT_EQ(gt->ne[1], t.ne[1]);
    ASSERT_EQ(ggml_nbytes(gt), bytes.size());
    EXPECT_EQ(std::memcmp(gt->data, bytes.data(), bytes.size()), 0);
    // ggml's dequantization of what it read == lmpress's dequantization of what lmpress read.
    std::vector<float> theirs(size_t(t.numel()));
    ggml_to_float(t.type, gt->data, theirs.data(), t.numel());
    const auto mine = t.to_f32();
    EXPECT_EQ(std::memcmp(mine.data(), theirs.data(), mine.size() * 4), 0);
  }
  gguf_free(g);
  ggml_free(ctx);
  fs::remove(path);
}

// ggml's writer and lmpress's writer produce the same bytes for the same content, and lmpress reads ggml's file.
TEST(GgmlInterop, LmpressReadsGgmlGgufAndWritesTheSameBytes) {
  Sample s = make_sample();
  const std::string ours_path = tmp_path("same_ours.gguf"), theirs_path = tmp_path("same_ggml.gguf");
  s.w.write(ours_path);
  lmp::GgufFile ours(ours_path);

  ggml_init_params ip = {/*mem_size=*/size_t(1) << 22, /*mem_buffer=*/nullptr, /*no_alloc=*/false};
  ggml_context* ctx = ggml_init(ip);
  gguf_context* g = gguf_init_empty();
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_u32(g, "llama.block_count", 5);
  gguf_set_val_i8(g, "i8", -7);
  gguf_set_val_u16(g, "u16", 65535);
  gguf_set_val_i64(g, "i64", -123456789012345);
  gguf_set_val_f64(g, "f64", 2.5e-300);
  gguf_set_val_bool(g, "flag", true);
  gguf_set_val_f32(g, "eps", 1e-5f);
  const char* toks[] = {"<unk>", "<s>", "</s>", "▁hello"};
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, 4);
  const float scores[] = {0, 0, 0, -3.5f};
  gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 4);
  const int32_t types[] = {2, 3, 3, 1};
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 4);
  for (const auto& [name, bytes] : s.tensors) {
    const lmp::GgufTensor& t = ours.tensor(name);
    ggml_tensor* gt = ggml_new_tensor_2d(ctx, ggml_type(uint32_t(t.type)), t.ne[0], t.ne[1]);
    ggml_set_name(gt, name.c_str());
    std::memcpy(gt->data, bytes.data(), bytes.size());
    gguf_add_tensor(g, gt);
  }
  ASSERT_TRUE(gguf_write_to_file(g, theirs_path.c_str(), /*only_meta=*/false));
  gguf_free(g);
  ggml_free(ctx);

  lmp::GgufFile theirs(theirs_path);
  EXPECT_EQ(theirs.get_strings("tokenizer.ggml.tokens"), ours.get_strings("tokenizer.ggml.tokens"));
  EXPECT_EQ(theirs.get_int("i64"), -123456789012345);
  ASSERT_EQ(theirs.tensors().size(), ours.tensors().size());
  for (const auto& t : theirs.tensors()) EXPECT_EQ(t.to_f32(), ours.tensor(t.name).to_f32()) << t.name;
  EXPECT_EQ(lmp::read_file(theirs_path), lmp::read_file(ours_path));
  fs::remove(ours_path);
  fs::remove(theirs_path);
}

// ---------------------------------------------------------------------------------------------------
// lmpress's model export (io/gguf_export.h) read by ggml: keys, types, shapes, and every tensor dequantized
// by ggml's to_float bit-exactly equal to lmpress's dequantization (of the file, and of the re-imported
// model's Linears, q/k rows un-permuted).

namespace {

// A random Llama (hidden 256, ffn 512: K-quant widths) built in memory, with a small SentencePiece vocabulary.
std::unique_ptr<lmp::Model> random_model(uint32_t seed) {
  using namespace lmp;
  auto m = std::make_unique<Model>();
  ModelConfig& c = m->cfg;
  c.hidden = 256, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 64, c.intermediate = 512;
  c.vocab = 320, c.max_pos = 256, c.tie_embeddings = false;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  auto rnd = [&](size_t n, float s) {
    std::vector<float> v(n);
    for (auto& x : v) x = nd(rng) * s;
    return v;
  };
  auto dense = [&](int64_t r, int64_t k) { return std::make_unique<DenseF32>(r, k, rnd(size_t(r * k), 0.0625f)); };
  m->embed = rnd(size_t(c.vocab) * c.hidden, 1.f);
  m->final_norm = rnd(size_t(c.hidden), 0.1f);
  m->lm_head.w = dense(c.vocab, c.hidden);
  const int64_t C = c.hidden, q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim, F = c.intermediate;
  for (int l = 0; l < c.n_layers; l++) {
    Block b;
    b.attn_norm = rnd(size_t(C), 0.1f);
    b.ffn_norm = rnd(size_t(C), 0.1f);
    const int64_t shapes[7][2] = {{q, C}, {kv, C}, {kv, C}, {C, q}, {F, C}, {F, C}, {C, F}};
    for (int k = 0; k < 7; k++) b.lin[size_t(k)].w = dense(shapes[k][0], shapes[k][1]);
    m->blocks.push_back(std::move(b));
  }
  BpeVocab v;
  v.source = "random";
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::Unknown, TokenType::Control, TokenType::Control};
  for (int i = 0; i < 256; i++) v.tokens.push_back(fmt::format("<0x{:02X}>", i)), v.types.push_back(TokenType::Byte);
  for (int i = 0; int(v.tokens.size()) < c.vocab; i++)
    v.tokens.push_back(fmt::format("\xE2\x96\x81{}", char('a' + i % 26)) + std::string(size_t(i / 26), 'x')),
        v.types.push_back(TokenType::Normal);
  v.scores.assign(v.tokens.size(), 0.f);
  v.bos_id = 1, v.eos_id = 2, v.unk_id = 0;
  m->set_tokenizer(make_bpe_tokenizer(v));
  return m;
}

}  // namespace

TEST(GgmlInterop, GgmlReadsLmpressModelExport) {
  using namespace lmp;
  auto m = random_model(7);
  // Also an "auto" export of QInt projections whose codes map exactly onto Q8_0 / Q4_0.
  auto mq = random_model(8);
  for (auto& b : mq->blocks)
    for (int k = 0; k < 7; k++) {
      auto& l = b.lin[size_t(k)];
      l.w = QIntMatrix::quantize(l.out(), l.in(), l.w->dense().data(), QuantGrid{k < 4 ? 8 : 4, true, 32});
    }
  struct Case {
    const char* type;
    const Model* model;
  };
  for (const Case& cs : {Case{"f16", m.get()}, Case{"q8_0", m.get()}, Case{"q4_0", m.get()}, Case{"q4_k", m.get()},
                         Case{"auto", mq.get()}}) {
    SCOPED_TRACE(cs.type);
    const Model& src = *cs.model;
    const ModelConfig& c = src.cfg;
    const std::string path = tmp_path(std::string("export_") + cs.type + ".gguf");
    GgufExportOptions o;
    o.type = cs.type;
    o.log = [](const std::string&) {};
    export_gguf(src, path, o);

    ggml_context* ctx = nullptr;
    gguf_context* g = gguf_init_from_file(path.c_str(), {/*no_alloc=*/false, &ctx});
    ASSERT_NE(g, nullptr) << "ggml could not open " << path;
    auto u32 = [&](const char* k) { return gguf_get_val_u32(g, gguf_find_key(g, k)); };
    EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "general.architecture")), "llama");
    EXPECT_EQ(u32("llama.embedding_length"), 256u);
    EXPECT_EQ(u32("llama.block_count"), 2u);
    EXPECT_EQ(u32("llama.feed_forward_length"), 512u);
    EXPECT_EQ(u32("llama.attention.head_count"), 4u);
    EXPECT_EQ(u32("llama.attention.head_count_kv"), 2u);
    EXPECT_EQ(u32("llama.rope.dimension_count"), 64u);
    EXPECT_EQ(gguf_get_val_f32(g, gguf_find_key(g, "llama.attention.layer_norm_rms_epsilon")), c.rms_eps);
    EXPECT_STREQ(gguf_get_val_str(g, gguf_find_key(g, "tokenizer.ggml.model")), "llama");
    EXPECT_EQ(gguf_get_arr_n(g, gguf_find_key(g, "tokenizer.ggml.tokens")), 320u);
    EXPECT_EQ(gguf_get_arr_n(g, gguf_find_key(g, "tokenizer.ggml.scores")), 320u);
    EXPECT_EQ(u32("tokenizer.ggml.bos_token_id"), 1u);
    const uint32_t ftype = std::string(cs.type) == "f16" ? 1 : cs.type[1] == '8' ? 7 : std::string(cs.type) == "q4_0" ? 2
                           : std::string(cs.type) == "q4_k" ? 15 : 2;  // auto: mostly Q4_0 (ffn) by weights
    EXPECT_EQ(u32("general.file_type"), ftype);
    EXPECT_EQ(gguf_get_n_tensors(g), 3 + 9 * c.n_layers);

    auto back = load_model(path);
    static const char* const names[7] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    for (int64_t id = 0; id < gguf_get_n_tensors(g); id++) {
      const std::string name = gguf_get_tensor_name(g, id);
      SCOPED_TRACE(name);
      const ggml_tensor* gt = ggml_get_tensor(ctx, name.c_str());
      ASSERT_NE(gt, nullptr);
      const GgmlType t = GgmlType(uint32_t(gguf_get_tensor_type(g, id)));
      const int64_t n = ggml_nelements(gt);
      std::vector<float> theirs(static_cast<size_t>(n));
      ggml_to_float(t, gt->data, theirs.data(), n);
      GgufFile ours(path);
      const GgufTensor& ot = ours.tensor(name);
      EXPECT_EQ(ot.ne[0], gt->ne[0]);
      EXPECT_EQ(ot.numel(), n);
      const auto mine = ot.to_f32();
      EXPECT_EQ(std::memcmp(mine.data(), theirs.data(), size_t(n) * 4), 0);
      // Projections: type and shape as asked, and the re-imported Linear computes with exactly these values.
      for (int l = 0; l < c.n_layers; l++)
        for (int k = 0; k < 7; k++) {
          if (name != fmt::format("blk.{}.{}.weight", l, names[k])) continue;
          const WeightMatrix& w = *src.blocks[size_t(l)].lin[size_t(k)].w;
          EXPECT_EQ(gt->ne[0], w.cols());
          EXPECT_EQ(gt->ne[1], w.rows());
          GgmlType want = std::string(cs.type) == "auto" ? (k < 4 ? GgmlType::Q8_0 : GgmlType::Q4_0)
                                                         : ggml_type_by_name(cs.type == std::string("q4_k") ? "q4_K" : cs.type)->type;
          EXPECT_EQ(t, want);
          std::vector<float> hf = theirs;
          if (k < 2) {
            auto perm = rope_rows_hf_from_gguf(k == 0 ? c.n_heads : c.n_kv_heads, c.head_dim);
            auto b = permute_rows(reinterpret_cast<const uint8_t*>(theirs.data()), size_t(w.cols()) * 4, perm);
            std::memcpy(hf.data(), b.data(), b.size());
          }
          const auto imported = back->blocks[size_t(l)].lin[size_t(k)].w->dense();
          EXPECT_EQ(std::memcmp(imported.data(), hf.data(), hf.size() * 4), 0);
          if (std::string(cs.type) == "auto") {  // codes kept: ggml's values are lmpress's QInt values
            const auto q = w.dense();
            EXPECT_EQ(std::memcmp(q.data(), hf.data(), hf.size() * 4), 0);
          }
        }
    }
    gguf_free(g);
    ggml_free(ctx);
    fs::remove(path);
  }
}

// GGUF reader/writer and ggml block formats: real llama.cpp-written files (shared/peers/gguf), writer →
// reader round trips, quantizer error bounds through the traits table, malformed files, GgmlBlockMatrix.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <unistd.h>

#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/ggml_blocks.h"
#include "kernels/ggml_blocks_matrix.h"
#include "kernels/weight_registry.h"

namespace fs = std::filesystem;
using namespace lmp;

namespace {

const std::string kPeers = LMP_SOURCE_DIR "/../shared/peers/gguf";

std::string tmp_path(const std::string& name) {
  return fs::path(::testing::TempDir()) / ("lmp_gguf_" + std::to_string(::getpid()) + "_" + name);
}

#define SKIP_WITHOUT(path) \
  if (!fs::exists(path)) GTEST_SKIP() << "shared test file " << (path) << " is absent (../shared/peers/gguf)"

// sqrt(Σ(a-b)² / Σa²): the one error metric used below.
double rel_rms(const std::vector<float>& ref, const std::vector<float>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); i++) {
    num += (double(ref[i]) - got[i]) * (double(ref[i]) - got[i]);
    den += double(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

std::map<std::string, int> type_counts(const GgufFile& f) {
  std::map<std::string, int> m;
  for (const auto& t : f.tensors()) m[t.traits().name]++;
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Real files written by llama.cpp

TEST(GgufRealFiles, EveryModelAndQuantizedFileParses) {
  SKIP_WITHOUT(kPeers);
  int n = 0;
  for (const char* dir : {"/models", "/quantized"}) {
    for (const auto& e : fs::directory_iterator(kPeers + dir)) {
      if (e.path().extension() != ".gguf") continue;
      SCOPED_TRACE(e.path().string());
      GgufFile f(e.path().string());
      EXPECT_EQ(f.version(), 3u);
      EXPECT_EQ(f.get_string("general.architecture"), "llama");
      EXPECT_GT(f.get_uint("llama.block_count"), 0u);
      EXPECT_GT(f.get_uint("llama.embedding_length"), 0u);
      const auto tokens = f.get_strings("tokenizer.ggml.tokens");
      EXPECT_EQ(f.get_floats("tokenizer.ggml.scores").size(), tokens.size());
      EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type").size(), tokens.size());
      EXPECT_FALSE(f.tensors().empty());
      for (const auto& t : f.tensors()) {
        const auto v = t.to_f32();
        for (float x : v) ASSERT_TRUE(std::isfinite(x)) << t.name;
      }
      n++;
    }
  }
  EXPECT_EQ(n, 6);
}

TEST(GgufRealFiles, Stories260KMetadataAndTypes) {
  const std::string dir = kPeers + "/quantized/";
  SKIP_WITHOUT(dir);
  GgufFile f32(kPeers + "/models/stories260K.gguf");
  EXPECT_EQ(f32.get_uint("llama.block_count"), 5u);
  EXPECT_EQ(f32.get_uint("llama.embedding_length"), 64u);
  EXPECT_EQ(f32.get_uint("llama.feed_forward_length"), 172u);
  EXPECT_EQ(f32.get_uint("llama.attention.head_count"), 8u);
  EXPECT_EQ(f32.get_uint("llama.attention.head_count_kv"), 4u);
  EXPECT_NEAR(f32.get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-9);
  EXPECT_EQ(f32.get_string("tokenizer.ggml.model"), "llama");
  const auto tokens = f32.get_strings("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[0], "<unk>");
  EXPECT_EQ(f32.get_uint("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(f32.alignment(), 32u);
  EXPECT_EQ(f32.data_offset(), 14176u);
  EXPECT_EQ(f32.tensors().size(), 48u);
  EXPECT_EQ(type_counts(f32), (std::map<std::string, int>{{"f32", 48}}));
  const GgufTensor& ffn_down = f32.tensor("blk.0.ffn_down.weight");
  EXPECT_EQ(ffn_down.ne, (std::vector<int64_t>{172, 64}));  // ggml order: (in = cols, out = rows)
  EXPECT_EQ(ffn_down.shape(), (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(ffn_down.rows(), 64);
  EXPECT_EQ(ffn_down.cols(), 172);

  using M = std::map<std::string, int>;
  EXPECT_EQ(type_counts(GgufFile(dir + "stories260K-F16.gguf")), (M{{"f16", 37}, {"f32", 11}}));
  EXPECT_EQ(type_counts(GgufFile(dir + "stories260K-Q6_K.gguf")), (M{{"q8_0", 32}, {"f16", 5}, {"f32", 11}}));
  EXPECT_EQ(type_counts(GgufFile(dir + "stories260K-Q4_K_M.gguf")),
            (M{{"q5_0", 29}, {"q8_0", 3}, {"f16", 5}, {"f32", 11}}));
  EXPECT_EQ(type_counts(GgufFile(dir + "stories260K-Q2_K.gguf")),
            (M{{"iq4_nl", 31}, {"q8_0", 1}, {"f16", 5}, {"f32", 11}}));
}

TEST(GgufRealFiles, F16FileIsTheF32FileRoundedToHalf) {
  SKIP_WITHOUT(kPeers + "/quantized/stories260K-F16.gguf");
  GgufFile ref(kPeers + "/models/stories260K.gguf"), f16(kPeers + "/quantized/stories260K-F16.gguf");
  for (const auto& t : f16.tensors()) {
    const auto want = ref.tensor(t.name).to_f32();
    const auto got = t.to_f32();
    ASSERT_EQ(got.size(), want.size()) << t.name;
    for (size_t i = 0; i < got.size(); i++)
      ASSERT_EQ(got[i], t.type == GgmlType::F16 ? f16_to_f32(f32_to_f16(want[i])) : want[i]) << t.name << " " << i;
  }
}

// Relative RMS error of every quantized tensor against the F32 file (checks the dequantizers on data
// llama-quantize wrote). Bounds: a few times the error of round-to-nearest on the type's grid.
TEST(GgufRealFiles, QuantizedFilesDequantizeCloseToF32) {
  SKIP_WITHOUT(kPeers + "/quantized");
  const std::map<std::string, double> bound = {{"f32", 0},    {"f16", 1e-3},  {"q8_0", 0.01},
                                               {"q5_0", 0.07}, {"iq4_nl", 0.12}};
  GgufFile ref(kPeers + "/models/stories260K.gguf");
  for (const char* name : {"Q6_K", "Q4_K_M", "Q2_K"}) {
    GgufFile f(kPeers + "/quantized/stories260K-" + name + ".gguf");
    std::map<std::string, double> worst;
    for (const auto& t : f.tensors()) {
      const double e = rel_rms(ref.tensor(t.name).to_f32(), t.to_f32());
      worst[t.traits().name] = std::max(worst[t.traits().name], e);
      EXPECT_LE(e, bound.at(t.traits().name)) << name << " " << t.name << " " << t.traits().name;
    }
    for (const auto& [type, e] : worst) std::printf("  %-7s %-7s worst relative RMS error %.5f\n", name, type.c_str(), e);
  }
}

TEST(GgufRealFiles, VocabOnlyFilesParse) {
  SKIP_WITHOUT(kPeers + "/vocab");
  int n = 0;
  for (const auto& e : fs::directory_iterator(kPeers + "/vocab")) {
    if (e.path().extension() != ".gguf") continue;
    SCOPED_TRACE(e.path().string());
    GgufFile f(e.path().string());
    EXPECT_TRUE(f.tensors().empty());
    EXPECT_GT(f.get_strings("tokenizer.ggml.tokens").size(), 30000u);
    n++;
  }
  EXPECT_GE(n, 10);
}

TEST(GgufRealFiles, TensorBecomesWeightMatrix) {
  SKIP_WITHOUT(kPeers + "/quantized/stories260K-Q2_K.gguf");
  auto f = std::make_shared<GgufFile>(kPeers + "/quantized/stories260K-Q2_K.gguf");
  for (const auto& t : f->tensors()) {
    if (t.ne.size() != 2) continue;
    WeightPtr w = make_ggml_weight(t.type, t.rows(), t.cols(), t.data, f);
    EXPECT_EQ(w->dense(), t.to_f32()) << t.name;
    EXPECT_EQ(w->nbytes(), t.nbytes);
  }
}

// ---------------------------------------------------------------------------------------------------
// Writer → reader

namespace {
GgufWriter sample_writer(std::map<std::string, std::vector<uint8_t>>* tensor_bytes) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set("u8", GgufValue::of(GgufType::U8, uint8_t(200)));
  w.set("i8", GgufValue::of(GgufType::I8, int8_t(-100)));
  w.set("u16", GgufValue::of(GgufType::U16, uint16_t(60000)));
  w.set("i16", GgufValue::of(GgufType::I16, int16_t(-30000)));
  w.set_u32("u32", 4000000000u);
  w.set("i32", GgufValue::of(GgufType::I32, int32_t(-2000000000)));
  w.set_f32("f32", 1.5e-5f);
  w.set("bool", GgufValue::of(GgufType::BOOL, true));
  w.set("u64", GgufValue::of(GgufType::U64, uint64_t(1) << 60));
  w.set("i64", GgufValue::of(GgufType::I64, -(int64_t(1) << 60)));
  w.set("f64", GgufValue::of(GgufType::F64, 3.141592653589793));
  w.set_string("empty", "");
  w.set("tokens", GgufValue::strings({"<unk>", "<s>", "", "héllo ▁world"}));
  w.set("scores", GgufValue::array(GgufType::F32, std::vector<float>{0.f, -1.5f, 2.25f, -1e30f}));
  w.set("token_type", GgufValue::array(GgufType::I32, std::vector<int32_t>{2, 3, 1, 1}));
  w.set("u8s", GgufValue::array(GgufType::U8, std::vector<uint8_t>{1, 2, 255}));
  w.set("i64s", GgufValue::array(GgufType::I64, std::vector<int64_t>{-1, INT64_MAX}));
  w.set("f64s", GgufValue::array(GgufType::F64, std::vector<double>{1e-300}));
  w.set("bools", GgufValue::array(GgufType::BOOL, std::vector<uint8_t>{0, 1}));
  w.set("no_ints", GgufValue::array(GgufType::U32, std::vector<uint32_t>{}));
  w.set("no_strings", GgufValue::strings({}));
  std::mt19937 rng(7);
  for (const auto& t : ggml_types()) {  // one tensor of every supported type, random block bytes
    const std::vector<int64_t> ne = {2 * t.block_size * (t.block_size == 1 ? 3 : 1), 3};
    std::vector<uint8_t> b(3 * ggml_row_size(t.type, ne[0]));
    for (auto& x : b) x = uint8_t(rng());
    w.add_tensor(std::string("t.") + t.name, t.type, ne, b.data(), b.size());
    (*tensor_bytes)[std::string("t.") + t.name] = std::move(b);
  }
  return w;
}
}  // namespace

TEST(GgufWriter, RoundTripIsBitExact) {
  std::map<std::string, std::vector<uint8_t>> bytes;
  GgufWriter w = sample_writer(&bytes);
  const std::string path = tmp_path("roundtrip.gguf");
  w.write(path);
  const std::vector<uint8_t> image = w.serialize();
  const std::string on_disk = read_file(path);
  ASSERT_EQ(on_disk.size(), image.size());
  EXPECT_EQ(std::memcmp(on_disk.data(), image.data(), image.size()), 0);
  EXPECT_EQ(image.size() % 32, 0u);

  GgufFile f(path);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("u8"), 200u);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_uint("u16"), 60000u);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_uint("u32"), 4000000000u);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(float(f.get_float("f32")), 1.5e-5f);
  EXPECT_TRUE(f.get_bool("bool"));
  EXPECT_EQ(f.get_uint("u64"), uint64_t(1) << 60);
  EXPECT_EQ(f.get_int("i64"), -(int64_t(1) << 60));
  EXPECT_EQ(f.get_float("f64"), 3.141592653589793);
  EXPECT_EQ(f.get_string("empty"), "");
  EXPECT_EQ(f.get_strings("tokens"), (std::vector<std::string>{"<unk>", "<s>", "", "héllo ▁world"}));
  EXPECT_EQ(f.get_floats("scores"), (std::vector<float>{0.f, -1.5f, 2.25f, -1e30f}));
  EXPECT_EQ(f.get_ints("token_type"), (std::vector<int64_t>{2, 3, 1, 1}));
  EXPECT_EQ(f.get_ints("u8s"), (std::vector<int64_t>{1, 2, 255}));
  EXPECT_EQ(f.get_ints("i64s"), (std::vector<int64_t>{-1, INT64_MAX}));
  EXPECT_EQ(f.find("bools")->elem, GgufType::BOOL);
  EXPECT_EQ(f.find("no_ints")->size(), 0u);
  EXPECT_EQ(f.get_strings("no_strings").size(), 0u);
  EXPECT_EQ(f.metadata().size(), 22u);
  EXPECT_EQ(f.metadata()[3].first, "u16");  // insertion order kept

  ASSERT_EQ(f.tensors().size(), bytes.size());
  for (const auto& t : f.tensors()) {
    const auto& want = bytes.at(t.name);
    ASSERT_EQ(t.nbytes, want.size()) << t.name;
    EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0) << t.name;
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.ne[1], 3);
  }
  // Reading back and writing again reproduces the file byte for byte.
  GgufWriter again;
  for (const auto& [k, v] : f.metadata()) again.set(k, v);
  for (const auto& t : f.tensors()) again.add_tensor_view(t.name, t.type, t.ne, t.data, t.nbytes);
  EXPECT_EQ(again.serialize(), image);
  fs::remove(path);
}

TEST(GgufWriter, CustomAlignmentAndTypedGetterErrors) {
  GgufWriter w;
  w.set_u32("general.alignment", 64);
  std::vector<float> a(5, 1.0f), b(3, 2.0f);
  w.add_tensor("a", GgmlType::F32, {5}, a.data(), 20);
  w.add_tensor("b", GgmlType::F32, {3}, b.data(), 12);
  const std::string path = tmp_path("align64.gguf");
  w.write(path);
  GgufFile f(path);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.tensor("b").offset, 64u);
  EXPECT_EQ(f.tensor("b").to_f32(), b);
  try {
    f.get_string("general.alignment");
    FAIL() << "expected lmp::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("want string"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f.get_uint("missing"), Error);
  EXPECT_THROW(f.tensor("missing"), Error);
  EXPECT_THROW(w.set_u32("general.alignment", 48), Error);
  EXPECT_THROW(w.add_tensor("a", GgmlType::F32, {5}, a.data(), 20), Error);  // duplicate
  EXPECT_THROW(w.add_tensor("c", GgmlType::Q4_0, {31}, a.data(), 18), Error);  // not whole blocks
  EXPECT_THROW(w.add_tensor("d", GgmlType::F32, {5}, a.data(), 16), Error);    // wrong size
  fs::remove(path);
}

// ---------------------------------------------------------------------------------------------------
// Quantizers, through the traits table

TEST(GgmlBlocks, TraitsTableIsConsistent) {
  for (const auto& t : ggml_types()) {
    EXPECT_EQ(ggml_type_traits(uint32_t(t.type)), &t);
    EXPECT_EQ(ggml_type_by_name(t.name), &t);
    EXPECT_NE(t.to_float, nullptr);
  }
  EXPECT_EQ(ggml_traits(GgmlType::Q4_K).bits_per_weight(), 4.5);
  EXPECT_EQ(ggml_traits(GgmlType::Q2_K).bits_per_weight(), 2.625);
  EXPECT_EQ(ggml_traits(GgmlType::Q6_K).bits_per_weight(), 6.5625);
  EXPECT_EQ(ggml_traits(GgmlType::IQ4_XS).bits_per_weight(), 4.25);
  EXPECT_EQ(ggml_type_traits(16), nullptr);  // IQ2_XXS: not supported
  EXPECT_THROW(ggml_row_size(GgmlType::Q4_K, 100), Error);
}

// Round-to-nearest error bound per type (Gaussian rows, σ = 1): relative RMS error.
TEST(GgmlBlocks, QuantizeDequantizeErrorWithinBound) {
  const std::map<std::string, double> bound = {{"f32", 0},     {"f16", 4e-4},  {"bf16", 3e-3}, {"q8_0", 0.006},
                                               {"q5_0", 0.05}, {"q5_1", 0.05}, {"q4_0", 0.11}, {"q4_1", 0.11},
                                               {"q4_K", 0.1}};
  const int64_t n = 16 * kQK_K;
  const auto x = gaussian(size_t(n), 1);
  int tested = 0;
  for (const auto& t : ggml_types()) {
    if (!t.from_float) continue;
    std::vector<uint8_t> q(ggml_row_size(t.type, n));
    std::vector<float> y(static_cast<size_t>(n));
    t.from_float(x.data(), q.data(), n);
    t.to_float(q.data(), y.data(), n);
    const double e = rel_rms(x, y);
    std::printf("  %-5s %.4f bits/weight, relative RMS error %.5f\n", t.name, t.bits_per_weight(), e);
    EXPECT_LE(e, bound.at(t.name)) << t.name;
    tested++;
  }
  EXPECT_EQ(tested, 9);
}

// Per-element bound of the 32-element round-to-nearest formats: |x - x̂| <= step (Q4_0's clamp at the
// positive end costs up to one step) plus the f16 rounding of the scale.
TEST(GgmlBlocks, PerElementErrorWithinOneStep) {
  const auto x = gaussian(32 * 64, 2, 3.0f);
  std::vector<float> y(x.size());
  std::vector<BlockQ8_0> q8(64);
  quantize_row_q8_0(x.data(), q8.data(), int64_t(x.size()));
  dequantize_row_q8_0(q8.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); i++)
    ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * f16_to_f32(q8[i / 32].d) * 1.01f + std::fabs(x[i]) * 1e-3f) << i;
  std::vector<BlockQ4_0> q40(64);
  quantize_row_q4_0(x.data(), q40.data(), int64_t(x.size()));
  dequantize_row_q4_0(q40.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); i++)
    ASSERT_LE(std::fabs(x[i] - y[i]), std::fabs(f16_to_f32(q40[i / 32].d)) * 1.01f + std::fabs(x[i]) * 1e-3f) << i;
  std::vector<BlockQ4_1> q41(64);
  quantize_row_q4_1(x.data(), q41.data(), int64_t(x.size()));
  dequantize_row_q4_1(q41.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); i++)
    ASSERT_LE(std::fabs(x[i] - y[i]), 0.5f * f16_to_f32(q41[i / 32].d) * 1.01f + 3e-3f * 4) << i;
}

TEST(GgmlBlocks, Q4KConstantAndZeroRows) {
  std::vector<float> zeros(kQK_K, 0.0f), ones(kQK_K, 0.75f), y(kQK_K);
  BlockQ4_K b;
  quantize_row_q4_K(zeros.data(), &b, kQK_K);
  dequantize_row_q4_K(&b, y.data(), kQK_K);
  EXPECT_EQ(y, zeros);
  quantize_row_q4_K(ones.data(), &b, kQK_K);
  dequantize_row_q4_K(&b, y.data(), kQK_K);
  EXPECT_LE(rel_rms(ones, y), 0.01);
}

// ---------------------------------------------------------------------------------------------------
// Malformed files

namespace {
std::vector<uint8_t> tiny_file() {  // one KV, two q8_0 tensors of 2 × 32
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  std::vector<uint8_t> blocks(2 * sizeof(BlockQ8_0), 1);
  w.add_tensor("first", GgmlType::Q8_0, {32, 2}, blocks.data(), blocks.size());
  w.add_tensor("second", GgmlType::Q8_0, {32, 2}, blocks.data(), blocks.size());
  return w.serialize();
}
// Position of the u32 type field of a 2-d tensor info (its offset field follows it).
size_t type_field(const std::vector<uint8_t>& f, const std::string& name) {
  auto it = std::search(f.begin(), f.end(), name.begin(), name.end());
  return size_t(it - f.begin()) + name.size() + 4 + 2 * 8;
}
template <class T>
void poke(std::vector<uint8_t>& f, size_t at, T v) {
  std::memcpy(f.data() + at, &v, sizeof(T));
}
// The error message of opening bytes as a file ("" when it opens).
std::string open_error(const std::vector<uint8_t>& bytes, const std::string& name) {
  const std::string path = tmp_path(name);
  write_file_atomic(path, bytes.data(), bytes.size());
  std::string msg;
  try {
    GgufFile f(path);
  } catch (const Error& e) {
    msg = e.what();
  }
  fs::remove(path);
  EXPECT_NE(msg.find(path), std::string::npos) << "error should name the file: " << msg;
  return msg;
}
}  // namespace

TEST(GgufBadInput, EachProblemIsNamed) {
  const auto good = tiny_file();
  EXPECT_EQ(parse_gguf("mem", good.data(), good.size()).tensors.size(), 2u);
  {
    auto f = good;
    f[0] = 'X';
    EXPECT_NE(open_error(f, "magic.gguf").find("magic"), std::string::npos);
  }
  for (uint32_t v : {1u, 4u, 0x03000000u}) {
    auto f = good;
    poke<uint32_t>(f, 4, v);
    EXPECT_NE(open_error(f, "version.gguf").find("version"), std::string::npos) << v;
  }
  {
    auto f = good;
    f.resize(f.size() - 40);  // last tensor's data cut off
    EXPECT_NE(open_error(f, "truncated.gguf").find("past the end"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint32_t>(f, type_field(f, "second"), 99);
    EXPECT_NE(open_error(f, "type.gguf").find("unknown or unsupported ggml tensor type 99"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint64_t>(f, type_field(f, "second") + 4, 80);  // alignment is 32
    EXPECT_NE(open_error(f, "misaligned.gguf").find("not a multiple of the alignment"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint64_t>(f, type_field(f, "second") + 4, 32);  // first spans [0, 68)
    EXPECT_NE(open_error(f, "overlap.gguf").find("overlap"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint64_t>(f, 8, uint64_t(1) << 40);  // tensor count
    EXPECT_NE(open_error(f, "count.gguf").find("impossible"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint64_t>(f, 24, uint64_t(1) << 40);  // length of the first key
    EXPECT_NE(open_error(f, "string.gguf").find("past the end"), std::string::npos);
  }
  {
    auto f = good;
    poke<uint32_t>(f, type_field(f, "first") - 4 - 16, 7);  // n_dims
    EXPECT_NE(open_error(f, "dims.gguf").find("dimensions"), std::string::npos);
  }
  EXPECT_NE(open_error({'G', 'G'}, "short.gguf").find("magic"), std::string::npos);
  EXPECT_THROW(GgufFile(tmp_path("does_not_exist.gguf")), Error);
}

// ---------------------------------------------------------------------------------------------------
// GgmlBlockMatrix

namespace {
struct FileSource : TensorSource {
  std::shared_ptr<SafeTensorsFile> f;
  explicit FileSource(const std::string& p) : f(std::make_shared<SafeTensorsFile>(p)) {}
  const TensorView& get(const std::string& name) const override {
    const TensorView* t = f->find(name);
    check(t != nullptr, "{}: no tensor {}", f->path(), name);
    return *t;
  }
  bool has(const std::string& name) const override { return f->find(name) != nullptr; }
  std::string where() const override { return f->path(); }
  std::shared_ptr<const void> keeper() const override { return f; }
};
}  // namespace

TEST(GgmlBlockMatrix, MatmulMatchesDequantizedReference) {
  const int64_t rows = 70, cols = 2 * kQK_K;
  const auto W = gaussian(size_t(rows * cols), 3, 0.05f);
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::Q4_0}) {
    auto m = GgmlBlockMatrix::quantize(type, rows, cols, W.data());
    EXPECT_EQ(m->nbytes(), size_t(rows) * ggml_row_size(type, cols));
    const auto Wd = m->dense();
    for (int64_t n : {1, 5}) {
      const auto X = gaussian(size_t(n * cols), 4);
      std::vector<float> Y(size_t(n * rows));
      m->matmul(X.data(), n, Y.data());
      for (int64_t i = 0; i < n; i++)
        for (int64_t r = 0; r < rows; r++) {
          double s = 0;
          for (int64_t c = 0; c < cols; c++) s += double(X[i * cols + c]) * Wd[r * cols + c];
          ASSERT_NEAR(Y[i * rows + r], s, 1e-4 * (1 + std::fabs(s))) << ggml_traits(type).name << " n=" << n;
        }
    }
  }
}

TEST(GgmlBlockMatrix, SaveAndLoadThroughRegistry) {
  const int64_t rows = 9, cols = kQK_K;
  const auto W = gaussian(size_t(rows * cols), 5);
  auto m = GgmlBlockMatrix::quantize(GgmlType::Q4_K, rows, cols, W.data());
  SafeTensorsWriter w;
  const nlohmann::json spec = m->save(w, "layer");
  EXPECT_EQ(spec, (nlohmann::json{{"format", "ggml"}, {"type", "q4_K"}}));
  const std::string path = tmp_path("blocks.safetensors");
  w.write(path);
  FileSource src(path);
  WeightPtr back = load_weight(src, "layer", spec);
  EXPECT_EQ(back->format(), "ggml");
  EXPECT_EQ(back->rows(), rows);
  EXPECT_EQ(back->cols(), cols);
  EXPECT_EQ(back->dense(), m->dense());
  EXPECT_DOUBLE_EQ(back->bits_per_weight(), 4.5);
  EXPECT_THROW(load_weight(src, "layer", {{"format", "ggml"}, {"type", "q9_Z"}}), Error);
  EXPECT_THROW(GgmlBlockMatrix::quantize(GgmlType::Q6_K, rows, cols, W.data()), Error);  // no quantizer
  fs::remove(path);
}

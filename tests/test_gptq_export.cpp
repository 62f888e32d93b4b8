// `lmpress export --format gptq`: the file is re-read with lmpress's safetensors reader and unpacked here,
// bit by bit (independently of the exporter's packer), and every code, scale and zero point must equal the
// QIntMatrix's exactly; unpackable layers (ragged groups) fall back to f16, or are rejected with --strict.
#include <cstring>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/half.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/qint.h"
#include "model/model.h"
#include "testutil.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

std::string tiny(const std::string& tag, int ffn) {
  std::string dir = test::temp_dir(tag);
  test::TinySpec s;
  s.hidden = 64, s.heads = 4, s.kv_heads = 4, s.ffn = ffn, s.vocab = 64, s.layers = 2;
  test::write_tiny_model(dir, s);
  return dir;
}

std::vector<uint32_t> u32(const TensorView& t) {
  EXPECT_EQ(t.dtype, DType::I32) << t.name;
  std::vector<uint32_t> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

// Value of `bits` bits starting at bit `pos` of the little-endian stream whose 32-bit word i is at w[i·stride].
uint32_t read_bits(const uint32_t* w, int64_t stride, int64_t pos, int bits) {
  uint32_t v = 0;
  for (int t = 0; t < bits; t++) {
    const int64_t p = pos + t;
    v |= ((w[(p / 32) * stride] >> (p % 32)) & 1u) << t;
  }
  return v;
}

// Checks one exported Linear against the QIntMatrix it came from.
void expect_same(const SafeTensorsFile& f, const std::string& name, const QIntMatrix& q) {
  const int64_t in = q.cols(), out = q.rows(), b = q.grid().bits, ng = q.ngroups(), gs = q.grid().group_size(in);
  const TensorView *qw = f.find(name + ".qweight"), *qz = f.find(name + ".qzeros"), *sc = f.find(name + ".scales"),
                   *gi = f.find(name + ".g_idx");
  ASSERT_TRUE(qw && qz && sc && gi) << name;
  EXPECT_EQ(qw->shape, (std::vector<int64_t>{in * b / 32, out})) << name;
  EXPECT_EQ(qz->shape, (std::vector<int64_t>{ng, out * b / 32})) << name;
  EXPECT_EQ(sc->shape, (std::vector<int64_t>{ng, out})) << name;
  EXPECT_EQ(gi->shape, (std::vector<int64_t>{in})) << name;
  ASSERT_EQ(sc->dtype, DType::F16);
  const std::vector<uint32_t> W = u32(*qw), Z = u32(*qz), G = u32(*gi);
  std::vector<f16_t> S(size_t(sc->numel()));
  std::memcpy(S.data(), sc->data, S.size() * 2);
  std::vector<uint8_t> codes(static_cast<size_t>(in));
  int bad = 0;
  for (int64_t o = 0; o < out; o++) {
    q.unpack_row(o, codes.data());
    for (int64_t k = 0; k < in; k++) bad += read_bits(W.data() + o, out, k * b, int(b)) != codes[size_t(k)];
    for (int64_t g = 0; g < ng; g++) {
      // v1 convention: the stored value is zero − 1.
      bad += read_bits(Z.data() + g * (out * b / 32), 1, o * b, int(b)) + 1 != uint32_t(q.params(o, g).zero);
      bad += S[size_t(g * out + o)] != q.scales()[o * ng + g];
    }
  }
  for (int64_t k = 0; k < in; k++) bad += G[size_t(k)] != uint32_t(k / gs);
  EXPECT_EQ(bad, 0) << name << " " << q.format();
}

}  // namespace

TEST(GptqExport, CodesScalesZerosRoundTripExactly) {
  const std::string src = tiny("gx-src", 96), dir = test::temp_dir("gx");
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 0})
      for (bool sym : {false, true}) {
        const std::string q = dir + "/q", e = dir + "/e";
        std::string err, out;
        ASSERT_EQ(test::run_lmpress(fmt::format("quantize --model {} --method rtn --bits {} --group {} {} -o {}", src,
                                                bits, group, sym ? "--sym" : "", q), nullptr, &err), 0) << err;
        ASSERT_EQ(test::run_lmpress("export --model " + q + " --format gptq --json -o " + e, &out, &err), 0) << err;
        auto rep = nlohmann::json::parse(out);
        EXPECT_EQ(rep["packed_linears"].get<int>(), 14) << rep.dump();
        auto cfg = nlohmann::json::parse(read_file(e + "/config.json"))["quantization_config"];
        EXPECT_EQ(cfg["quant_method"], "gptq");
        EXPECT_EQ(cfg["bits"].get<int>(), bits);
        EXPECT_EQ(cfg["group_size"].get<int>(), group ? group : -1);
        EXPECT_EQ(cfg["sym"].get<bool>(), sym);
        EXPECT_EQ(cfg["desc_act"].get<bool>(), false);
        auto m = load_model(q);
        SafeTensorsFile f(e + "/model.safetensors");
        for (int l = 0; l < 2; l++)
          for (int k = 0; k < kLinearsPerBlock; k++) {
            const auto* qm = dynamic_cast<const QIntMatrix*>(m->blocks[size_t(l)].lin[size_t(k)].w.get());
            ASSERT_NE(qm, nullptr);
            expect_same(f, linear_name(l, LinearKind(k)), *qm);
          }
        ASSERT_NE(f.find("model.embed_tokens.weight"), nullptr);
        EXPECT_EQ(f.find("model.embed_tokens.weight")->dtype, DType::F16);
      }
}

TEST(GptqExport, RaggedGroupsFallBackToF16OrAreRejected) {
  // down_proj in_features 72: group 32 does not divide it (and 72·3 is not a multiple of 32).
  const std::string src = tiny("gx-rsrc", 72), dir = test::temp_dir("gx-r"), q = dir + "/q", e = dir + "/e";
  std::string err, out;
  ASSERT_EQ(test::run_lmpress("quantize --model " + src + " --method rtn --bits 4 --group 32 -o " + q, nullptr, &err), 0)
      << err;
  ASSERT_EQ(test::run_lmpress("export --model " + q + " --format gptq -o " + e, &out, &err), 0) << err;
  EXPECT_NE(err.find("model.layers.0.mlp.down_proj written as f16: group 32 does not divide in_features 72"),
            std::string::npos) << err;
  auto cfg = nlohmann::json::parse(read_file(e + "/config.json"))["quantization_config"];
  EXPECT_TRUE(cfg["dynamic"].contains("-:^model\\.layers\\.1\\.mlp\\.down_proj$")) << cfg.dump();
  SafeTensorsFile f(e + "/model.safetensors");
  const TensorView* w = f.find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->dtype, DType::F16);
  auto m = load_model(q);
  std::vector<float> ref = m->blocks[0].at(LinearKind::Down).w->dense(), got = w->to_f32();
  for (auto& x : ref) x = f16_to_f32(f32_to_f16(x));
  EXPECT_EQ(test::max_abs_diff(got.data(), ref.data(), ref.size()), 0.0);
  EXPECT_EQ(f.find("model.layers.0.mlp.down_proj.qweight"), nullptr);
  expect_same(f, "model.layers.0.mlp.up_proj", dynamic_cast<const QIntMatrix&>(*m->blocks[0].at(LinearKind::Up).w));
  // --strict: exit 2 naming the layer, nothing written.
  const std::string e2 = dir + "/strict";
  EXPECT_EQ(test::run_lmpress("export --model " + q + " --format gptq --strict -o " + e2, nullptr, &err), 2);
  EXPECT_NE(err.find("export gptq: model.layers.0.mlp.down_proj: group 32 does not divide"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(e2));
  // An unquantized model and an unknown format are errors too.
  EXPECT_EQ(test::run_lmpress("export --model " + src + " --format gptq -o " + e2, nullptr, &err), 2);
  EXPECT_NE(err.find("no group-wise int projections"), std::string::npos) << err;
  EXPECT_EQ(test::run_lmpress("export --model " + q + " --format onnx -o " + e2, nullptr, &err), 2);
  EXPECT_NE(err.find("--format onnx"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(e2));
}

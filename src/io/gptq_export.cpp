// GPTQ-layout export (see gptq_export.h for the layout and its conventions).
#include "io/gptq_export.h"

#include <filesystem>

#include "core/error.h"
#include "core/half.h"
#include "core/mmap_file.h"
#include "io/safetensors.h"
#include "kernels/qint.h"

namespace lmp {

namespace fs = std::filesystem;

void gptq_pack_stream(const uint32_t* codes, int64_t n, int bits, uint32_t* out) {
  const int64_t words = (n * bits + 31) / 32;
  std::fill(out, out + words, 0u);
  for (int64_t k = 0; k < n; k++) {
    const int64_t bit = k * bits, w = bit / 32;
    const int off = int(bit % 32);
    out[w] |= codes[k] << off;
    if (off + bits > 32) out[w + 1] |= codes[k] >> (32 - off);  // 3-bit codes straddle words
  }
}

namespace {

bool same_grid(const QuantGrid& a, const QuantGrid& b) {
  return a.bits == b.bits && a.group == b.group && a.sym == b.sym;
}

// Why q cannot be written in the GPTQ layout with grid g ("" when it can).
std::string unpackable_reason(const QIntMatrix& q, const QuantGrid& g) {
  const int64_t in = q.cols(), out = q.rows(), b = q.grid().bits;
  if (!same_grid(q.grid(), g))
    return fmt::format("its format {} differs from the export's {} (one grid per GPTQ checkpoint)",
                       q.format(), QIntMatrix::format_name(g));
  if (g.group > 0 && in % g.group != 0)
    return fmt::format("group {} does not divide in_features {} (ragged last group)", g.group, in);
  if (in * b % 32 != 0)
    return fmt::format("in_features {} x {} bits is not a multiple of 32 (qweight packs along the input)", in, b);
  if (out * b % 32 != 0)
    return fmt::format("out_features {} x {} bits is not a multiple of 32 (qzeros packs along the output)", out, b);
  if (!q.grid().sym)
    for (int64_t r = 0; r < out; r++)
      for (int64_t gi = 0; gi < q.ngroups(); gi++)
        if (q.params(r, gi).zero == 0)
          return fmt::format("row {} group {} has zero point 0, which the v1 zero-minus-one convention cannot "
                             "store", r, gi);
  return "";
}

// qweight (in·b/32, out): column o's codes as one bit stream along the input.
std::vector<uint32_t> pack_qweight(const QIntMatrix& q) {
  const int64_t in = q.cols(), out = q.rows(), b = q.grid().bits, rows = in * b / 32;
  std::vector<uint32_t> qw(static_cast<size_t>(rows * out)), col(static_cast<size_t>(in)),
      words(static_cast<size_t>(rows));
  std::vector<uint8_t> codes(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; o++) {
    q.unpack_row(o, codes.data());
    for (int64_t k = 0; k < in; k++) col[size_t(k)] = codes[size_t(k)];
    gptq_pack_stream(col.data(), in, int(b), words.data());
    for (int64_t i = 0; i < rows; i++) qw[size_t(i * out + o)] = words[size_t(i)];
  }
  return qw;
}

// qzeros (ngroups, out·b/32): per group, the zeros − 1 of every output as one bit stream; scales (ngroups, out).
void pack_zeros_scales(const QIntMatrix& q, std::vector<uint32_t>* qz, std::vector<f16_t>* sc) {
  const int64_t out = q.rows(), ng = q.ngroups(), b = q.grid().bits, wpg = out * b / 32;
  qz->assign(size_t(ng * wpg), 0u);
  sc->assign(size_t(ng * out), 0);
  std::vector<uint32_t> z(static_cast<size_t>(out));
  for (int64_t g = 0; g < ng; g++) {
    for (int64_t o = 0; o < out; o++) {
      z[size_t(o)] = uint32_t(q.params(o, g).zero - 1);
      (*sc)[size_t(g * out + o)] = q.scales()[o * ng + g];
    }
    gptq_pack_stream(z.data(), out, int(b), qz->data() + g * wpg);
  }
}

void add_f16(SafeTensorsWriter& w, const std::string& name, std::vector<int64_t> shape, const float* v, size_t n) {
  std::vector<f16_t> h(n);
  for (size_t i = 0; i < n; i++) h[i] = f32_to_f16(v[i]);
  w.add(name, DType::F16, std::move(shape), h.data(), n * 2);
}

void add_packed(SafeTensorsWriter& w, const std::string& name, const QIntMatrix& q) {
  const int64_t in = q.cols(), out = q.rows(), b = q.grid().bits, ng = q.ngroups(), gs = q.grid().group_size(in);
  std::vector<uint32_t> qw = pack_qweight(q), qz;
  std::vector<f16_t> sc;
  pack_zeros_scales(q, &qz, &sc);
  std::vector<int32_t> gidx(static_cast<size_t>(in));
  for (int64_t k = 0; k < in; k++) gidx[size_t(k)] = int32_t(k / gs);
  w.add(name + ".qweight", DType::I32, {in * b / 32, out}, qw.data(), qw.size() * 4);
  w.add(name + ".qzeros", DType::I32, {ng, out * b / 32}, qz.data(), qz.size() * 4);
  w.add(name + ".scales", DType::F16, {ng, out}, sc.data(), sc.size() * 2);
  w.add(name + ".g_idx", DType::I32, {in}, gidx.data(), gidx.size() * 4);
}

// The grid of the first group-wise int projection; throws when there is none.
QuantGrid model_grid(const Model& m) {
  for (const Block& b : m.blocks)
    for (const Linear& lin : b.lin)
      if (auto* q = dynamic_cast<const QIntMatrix*>(lin.w.get())) return q->grid();
  fail("export gptq: {} has no group-wise int projections (quantize it first: lmpress quantize --method "
       "rtn|gptq|awq)", m.dir);
}

void write_linears(const Model& m, const GptqExportOptions& o, SafeTensorsWriter& w, GptqExportReport& rep) {
  for (int l = 0; l < m.cfg.n_layers; l++)
    for (int k = 0; k < kLinearsPerBlock; k++) {
      const Linear& lin = m.blocks[size_t(l)].lin[size_t(k)];
      const std::string name = linear_name(l, LinearKind(k));
      const auto* q = dynamic_cast<const QIntMatrix*>(lin.w.get());
      std::string why = q ? unpackable_reason(*q, rep.grid)
                          : fmt::format("its format {} is not group-wise int", lin.w->format());
      check(why.empty() || !o.strict, "export gptq: {}: {}", name, why);
      if (why.empty()) {
        add_packed(w, name, *q);
        rep.packed++;
      } else {
        std::vector<float> W = lin.w->dense();
        add_f16(w, name + ".weight", {lin.out(), lin.in()}, W.data(), W.size());
        rep.fallback.emplace_back(name, why);
      }
      if (!lin.bias.empty()) add_f16(w, name + ".bias", {lin.out()}, lin.bias.data(), lin.bias.size());
    }
}

nlohmann::json gptq_config(const Model& m, const GptqExportReport& rep) {
  nlohmann::json dynamic = nlohmann::json::object();
  for (const auto& [name, why] : rep.fallback) {
    std::string re = "-:^";
    for (char c : name) re += c == '.' ? std::string("\\.") : std::string(1, c);
    dynamic[re + "$"] = nlohmann::json::object();
  }
  nlohmann::json cj = m.cfg.to_json();
  cj["torch_dtype"] = "float16";
  cj["quantization_config"] = {{"quant_method", "gptq"},
                               {"bits", rep.grid.bits},
                               {"group_size", rep.grid.group > 0 ? rep.grid.group : -1},
                               {"desc_act", false},
                               {"sym", rep.grid.sym},
                               {"checkpoint_format", "gptq"},
                               {"dynamic", dynamic},
                               {"true_sequential", true},
                               {"lmpress_recipe", m.recipe}};
  return cj;
}

void copy_tokenizer(const std::string& from, const fs::path& to) {
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                        "generation_config.json"})
    if (fs::exists(fs::path(from) / f)) fs::copy_file(fs::path(from) / f, to / f, fs::copy_options::overwrite_existing);
}

}  // namespace

GptqExportReport export_gptq(const Model& m, const std::string& out_dir, const GptqExportOptions& o) {
  const ModelConfig& c = m.cfg;
  GptqExportReport rep;
  rep.grid = model_grid(m);
  m.require_dense_embed("export --format gptq");
  SafeTensorsWriter w;
  add_f16(w, "model.embed_tokens.weight", {c.vocab, c.hidden}, m.embed.data(), m.embed.size());
  add_f16(w, "model.norm.weight", {c.hidden}, m.final_norm.data(), m.final_norm.size());
  for (int l = 0; l < c.n_layers; l++) {
    const Block& b = m.blocks[size_t(l)];
    const std::string p = fmt::format("model.layers.{}.", l);
    add_f16(w, p + "input_layernorm.weight", {c.hidden}, b.attn_norm.data(), b.attn_norm.size());
    add_f16(w, p + "post_attention_layernorm.weight", {c.hidden}, b.ffn_norm.data(), b.ffn_norm.size());
  }
  write_linears(m, o, w, rep);
  if (!c.tie_embeddings) {
    std::vector<float> H = m.lm_head.w->dense();
    add_f16(w, "lm_head.weight", {c.vocab, c.hidden}, H.data(), H.size());
  }
  w.set_metadata("format", "pt");
  // Build in OUT.tmp-lmpress, then rename over OUT: nothing half-written at OUT.
  const fs::path out = fs::absolute(out_dir), tmp = out.string() + ".tmp-lmpress";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  check(fs::create_directories(tmp, ec), "{}: cannot create directory ({})", tmp.string(), ec.message());
  try {
    w.write((tmp / "model.safetensors").string());
    const std::string text = gptq_config(m, rep).dump(2) + "\n";
    write_file_atomic((tmp / "config.json").string(), text.data(), text.size());
    copy_tokenizer(m.dir, tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  rep.bytes = size_t(fs::file_size(tmp / "model.safetensors"));
  fs::remove_all(out, ec);
  fs::rename(tmp, out);
  return rep;
}

}  // namespace lmp

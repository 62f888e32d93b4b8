// GGUF reading: a bounds-checked cursor over the mapped bytes; every count and length is checked against
// the bytes that remain before anything is allocated, so a hostile header fails fast with lmp::Error.
#include "io/gguf.h"

#include <algorithm>
#include <fmt/ranges.h>

#include "core/error.h"

namespace lmp {

namespace {
struct GgufTypeRow {
  GgufType t;
  const char* name;
  size_t size;  // bytes of one scalar; 0 for string and array
};
constexpr GgufTypeRow kGgufTypes[] = {
    {GgufType::U8, "u8", 1},         {GgufType::I8, "i8", 1},     {GgufType::U16, "u16", 2},
    {GgufType::I16, "i16", 2},       {GgufType::U32, "u32", 4},   {GgufType::I32, "i32", 4},
    {GgufType::F32, "f32", 4},       {GgufType::BOOL, "bool", 1}, {GgufType::STRING, "string", 0},
    {GgufType::ARRAY, "array", 0},   {GgufType::U64, "u64", 8},   {GgufType::I64, "i64", 8},
    {GgufType::F64, "f64", 8},
};

const GgufTypeRow* gguf_type_row(uint32_t id) { return id < std::size(kGgufTypes) ? &kGgufTypes[id] : nullptr; }

constexpr uint64_t kMaxElements = uint64_t(1) << 50;
// Smallest possible encodings, to reject counts that cannot fit in the file before allocating.
constexpr size_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, one u8
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // empty name, n_dims, one dim, type, offset

// Bounds-checked little-endian reader. ctx names what is being read, for error messages.
struct Cursor {
  const std::string& path;
  const uint8_t* base;
  size_t size;
  size_t pos = 0;
  std::string ctx = "header";

  size_t left() const { return size - pos; }
  void need(uint64_t n, const char* what) const {
    check(n <= left(), "{}: {}: {} ({} bytes at offset {}) runs past the end of the file ({} bytes; truncated?)",
          path, ctx, what, n, pos, size);
  }
  template <class T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(base + pos), size_t(n));
    pos += size_t(n);
    return s;
  }
  void bytes(uint64_t n, std::vector<uint8_t>* out, const char* what) {
    need(n, what);
    out->assign(base + pos, base + pos + n);
    pos += size_t(n);
  }
};

GgufType read_value_type(Cursor& c, const char* what) {
  const uint32_t id = c.read<uint32_t>(what);
  check(gguf_type_row(id) != nullptr, "{}: {}: unknown value type {}", c.path, c.ctx, id);
  return GgufType(id);
}

GgufValue read_array(Cursor& c) {
  GgufValue v;
  v.type = GgufType::ARRAY;
  v.elem = read_value_type(c, "array element type");
  check(v.elem != GgufType::ARRAY, "{}: {}: nested arrays are not supported", c.path, c.ctx);
  const uint64_t n = c.read<uint64_t>("array length");
  if (v.elem == GgufType::STRING) {
    check(n <= c.left() / 8, "{}: {}: array of {} strings cannot fit in the {} bytes left", c.path, c.ctx, n, c.left());
    v.strs.reserve(size_t(n));
    for (uint64_t i = 0; i < n; i++) v.strs.push_back(c.str("array string"));
    return v;
  }
  const size_t es = gguf_type_row(uint32_t(v.elem))->size;
  check(n <= c.left() / es, "{}: {}: array of {} {} cannot fit in the {} bytes left", c.path, c.ctx, n,
        gguf_type_name(v.elem), c.left());
  c.bytes(n * es, &v.raw, "array data");
  return v;
}

GgufValue read_value(Cursor& c, GgufType t) {
  if (t == GgufType::ARRAY) return read_array(c);
  GgufValue v;
  v.type = t;
  if (t == GgufType::STRING)
    v.strs.push_back(c.str("string value"));
  else
    c.bytes(gguf_type_row(uint32_t(t))->size, &v.raw, "value");
  return v;
}

void read_header(Cursor& c, GgufContents* out, uint64_t* n_tensors, uint64_t* n_kv) {
  check(c.size >= 4 && std::memcmp(c.base, "GGUF", 4) == 0, "{}: not a GGUF file (magic is not \"GGUF\")", c.path);
  c.pos = 4;
  out->version = c.read<uint32_t>("version");
  check(out->version != 1, "{}: GGUF version 1 is not supported (re-convert the model with a current llama.cpp)",
        c.path);
  check((out->version & 0xFFFF) != 0, "{}: GGUF version {:#x} looks byte-swapped (big-endian files are not supported)",
        c.path, out->version);
  check(out->version == 2 || out->version == 3, "{}: unsupported GGUF version {} (lmpress reads 2 and 3)", c.path,
        out->version);
  *n_tensors = c.read<uint64_t>("tensor count");
  *n_kv = c.read<uint64_t>("metadata count");
  check(*n_kv <= c.left() / kMinKvBytes, "{}: metadata count {} is impossible for a file of {} bytes", c.path, *n_kv,
        c.size);
  check(*n_tensors <= c.left() / kMinTensorInfoBytes, "{}: tensor count {} is impossible for a file of {} bytes",
        c.path, *n_tensors, c.size);
}

void read_metadata(Cursor& c, uint64_t n_kv, GgufContents* out) {
  std::map<std::string, size_t> seen;
  for (uint64_t i = 0; i < n_kv; i++) {
    c.ctx = fmt::format("metadata entry {}", i);
    std::string key = c.str("key");
    check(!key.empty(), "{}: {}: empty key", c.path, c.ctx);
    c.ctx = fmt::format("key '{}'", key);
    check(seen.emplace(key, i).second, "{}: {} appears twice", c.path, c.ctx);
    const GgufType t = read_value_type(c, "value type");
    out->kv.emplace_back(std::move(key), read_value(c, t));
  }
  auto it = seen.find("general.alignment");
  if (it == seen.end()) return;
  const GgufValue& a = out->kv[it->second].second;
  check(a.type == GgufType::U32, "{}: general.alignment must be u32, is {}", c.path, gguf_type_name(a.type));
  uint32_t al;
  std::memcpy(&al, a.raw.data(), 4);
  check(al != 0 && (al & (al - 1)) == 0, "{}: general.alignment {} is not a power of 2", c.path, al);
  out->alignment = al;
}

GgufTensor read_tensor_info(Cursor& c, uint64_t i) {
  GgufTensor t;
  c.ctx = fmt::format("tensor info {}", i);
  t.name = c.str("tensor name");
  c.ctx = fmt::format("tensor '{}'", t.name);
  const uint32_t n_dims = c.read<uint32_t>("dimension count");
  check(n_dims >= 1 && n_dims <= 4, "{}: {}: {} dimensions (must be 1 to 4)", c.path, c.ctx, n_dims);
  uint64_t numel = 1;
  for (uint32_t d = 0; d < n_dims; d++) {
    const uint64_t n = c.read<uint64_t>("dimension");
    check(n <= kMaxElements && (n == 0 || numel <= kMaxElements / n), "{}: {}: shape too large", c.path, c.ctx);
    numel *= n;
    t.ne.push_back(int64_t(n));
  }
  const uint32_t type = c.read<uint32_t>("tensor type");
  const GgmlTypeTraits* tr = ggml_type_traits(type);
  check(tr != nullptr, "{}: {}: unknown or unsupported ggml tensor type {}", c.path, c.ctx, type);
  t.type = tr->type;
  check(t.ne[0] % tr->block_size == 0, "{}: {}: {} elements per row is not a multiple of the {} block size {}",
        c.path, c.ctx, t.ne[0], tr->name, tr->block_size);
  t.nbytes = size_t(numel / uint64_t(tr->block_size)) * tr->type_size;
  t.offset = c.read<uint64_t>("tensor data offset");
  return t;
}

// Places every tensor in the data section and checks alignment, bounds and overlaps.
void place_tensors(Cursor& c, GgufContents* out) {
  const size_t al = out->alignment;
  out->data_offset = (c.pos + al - 1) / al * al;
  if (out->tensors.empty()) return;
  check(out->data_offset <= c.size, "{}: data section (offset {}) starts past the end of the file ({} bytes)", c.path,
        out->data_offset, c.size);
  const size_t data_size = c.size - out->data_offset;
  std::vector<const GgufTensor*> by_offset;
  for (GgufTensor& t : out->tensors) {
    check(t.offset % al == 0, "{}: tensor '{}': data offset {} is not a multiple of the alignment {}", c.path, t.name,
          t.offset, al);
    check(t.offset <= data_size && t.nbytes <= data_size - t.offset,
          "{}: tensor '{}': data [{}, {}) runs past the end of the data section ({} bytes; truncated file?)", c.path,
          t.name, t.offset, t.offset + t.nbytes, data_size);
    t.data = c.base + out->data_offset + t.offset;
    if (t.nbytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); i++) {
    const GgufTensor *a = by_offset[i - 1], *b = by_offset[i];
    check(b->offset >= a->offset + a->nbytes, "{}: tensors '{}' and '{}' overlap in the data section", c.path, a->name,
          b->name);
  }
}
}  // namespace

const char* gguf_type_name(GgufType t) {
  const GgufTypeRow* r = gguf_type_row(uint32_t(t));
  return r ? r->name : "?";
}

size_t GgufValue::size() const {
  if (type != GgufType::ARRAY) return 1;
  if (elem == GgufType::STRING) return strs.size();
  const GgufTypeRow* r = gguf_type_row(uint32_t(elem));
  return r && r->size ? raw.size() / r->size : 0;
}

GgufValue GgufValue::string(std::string s) {
  GgufValue g;
  g.type = GgufType::STRING;
  g.strs.push_back(std::move(s));
  return g;
}

GgufValue GgufValue::strings(std::vector<std::string> v) {
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = GgufType::STRING;
  g.strs = std::move(v);
  return g;
}

int64_t GgufTensor::numel() const {
  int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::shape() const { return {ne.rbegin(), ne.rend()}; }

std::vector<float> GgufTensor::to_f32() const {
  const GgmlTypeTraits& tr = traits();
  std::vector<float> out(static_cast<size_t>(numel()));
  const int64_t C = cols(), R = rows();
  const size_t rb = ggml_row_size(type, C);
  for (int64_t r = 0; r < R; r++) tr.to_float(data + size_t(r) * rb, out.data() + r * C, C);
  return out;
}

GgufContents parse_gguf(const std::string& path, const uint8_t* base, size_t size) {
  GgufContents out;
  Cursor c{path, base, size};
  uint64_t n_tensors = 0, n_kv = 0;
  read_header(c, &out, &n_tensors, &n_kv);
  read_metadata(c, n_kv, &out);
  std::map<std::string, uint64_t> names;
  out.tensors.reserve(size_t(n_tensors));
  for (uint64_t i = 0; i < n_tensors; i++) {
    out.tensors.push_back(read_tensor_info(c, i));
    check(names.emplace(out.tensors.back().name, i).second, "{}: tensor '{}' appears twice", path,
          out.tensors.back().name);
  }
  place_tensors(c, &out);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// GgufFile

GgufFile::GgufFile(const std::string& path) : file_(path), c_(parse_gguf(path, file_.data(), file_.size())) {
  for (size_t i = 0; i < c_.kv.size(); i++) kv_index_[c_.kv[i].first] = i;
  for (size_t i = 0; i < c_.tensors.size(); i++) tensor_index_[c_.tensors[i].name] = i;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &c_.kv[it->second].second;
}

const GgufValue& GgufFile::need(const std::string& key) const {
  const GgufValue* v = find(key);
  check(v != nullptr, "{}: metadata key '{}' is missing", path(), key);
  return *v;
}

namespace {
bool is_integer(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::U16: case GgufType::I16:
    case GgufType::U32: case GgufType::I32: case GgufType::U64: case GgufType::I64: return true;
    default: return false;
  }
}

// Integer element i of raw (of integer type t), widened losslessly.
__int128 integer_at(GgufType t, const std::vector<uint8_t>& raw, size_t i) {
  auto get = [&]<class T>(T) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    return __int128(v);
  };
  switch (t) {
    case GgufType::U8: return get(uint8_t{});
    case GgufType::I8: return get(int8_t{});
    case GgufType::U16: return get(uint16_t{});
    case GgufType::I16: return get(int16_t{});
    case GgufType::U32: return get(uint32_t{});
    case GgufType::I32: return get(int32_t{});
    case GgufType::U64: return get(uint64_t{});
    default: return get(int64_t{});
  }
}

double float_at(GgufType t, const std::vector<uint8_t>& raw, size_t i) {
  if (t == GgufType::F32) {
    float f;
    std::memcpy(&f, raw.data() + 4 * i, 4);
    return f;
  }
  double d;
  std::memcpy(&d, raw.data() + 8 * i, 8);
  return d;
}
}  // namespace

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.type == GgufType::STRING, "{}: metadata key '{}' is {}, want string", path(), key, gguf_type_name(v.type));
  return v.strs[0];
}

uint64_t GgufFile::get_uint(const std::string& key) const {
  const GgufValue& v = need(key);
  check(is_integer(v.type), "{}: metadata key '{}' is {}, want an integer", path(), key, gguf_type_name(v.type));
  const __int128 x = integer_at(v.type, v.raw, 0);
  check(x >= 0, "{}: metadata key '{}' is negative, want an unsigned integer", path(), key);
  return uint64_t(x);
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = need(key);
  check(is_integer(v.type), "{}: metadata key '{}' is {}, want an integer", path(), key, gguf_type_name(v.type));
  const __int128 x = integer_at(v.type, v.raw, 0);
  check(x <= INT64_MAX, "{}: metadata key '{}' does not fit in int64", path(), key);
  return int64_t(x);
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.type == GgufType::F32 || v.type == GgufType::F64, "{}: metadata key '{}' is {}, want f32 or f64", path(),
        key, gguf_type_name(v.type));
  return float_at(v.type, v.raw, 0);
}

bool GgufFile::get_bool(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.type == GgufType::BOOL, "{}: metadata key '{}' is {}, want bool", path(), key, gguf_type_name(v.type));
  return v.raw[0] != 0;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.is_array() && v.elem == GgufType::STRING, "{}: metadata key '{}' is not an array of strings", path(), key);
  return v.strs;
}

std::vector<float> GgufFile::get_floats(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.is_array() && (v.elem == GgufType::F32 || v.elem == GgufType::F64),
        "{}: metadata key '{}' is not an array of f32/f64", path(), key);
  std::vector<float> out(v.size());
  for (size_t i = 0; i < out.size(); i++) out[i] = float(float_at(v.elem, v.raw, i));
  return out;
}

std::vector<int64_t> GgufFile::get_ints(const std::string& key) const {
  const GgufValue& v = need(key);
  check(v.is_array() && is_integer(v.elem), "{}: metadata key '{}' is not an array of integers", path(), key);
  std::vector<int64_t> out(v.size());
  for (size_t i = 0; i < out.size(); i++) {
    const __int128 x = integer_at(v.elem, v.raw, i);
    check(x <= INT64_MAX, "{}: metadata key '{}': element {} does not fit in int64", path(), key, i);
    out[i] = int64_t(x);
  }
  return out;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &c_.tensors[it->second];
}

const GgufTensor& GgufFile::tensor(const std::string& name) const {
  const GgufTensor* t = find_tensor(name);
  check(t != nullptr, "{}: no tensor named '{}'", path(), name);
  return *t;
}

}  // namespace lmp

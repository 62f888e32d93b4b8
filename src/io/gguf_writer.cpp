// GGUF writing (version 3): KV pairs in insertion order, tensors in insertion order, each tensor's data
// padded with zeros to the alignment (the last one too, as llama.cpp does). Streamed to "<path>.tmp" and
// renamed, so a failed export never leaves a half-written file at path.
#include <cerrno>
#include <cstdio>
#include <fmt/ranges.h>

#include "core/error.h"
#include "io/gguf.h"

namespace lmp {

namespace {
constexpr size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) includes the terminator

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

void check_value(const std::string& key, const GgufValue& v) {
  check(!key.empty(), "gguf writer: empty metadata key");
  check(uint32_t(v.type) <= uint32_t(GgufType::F64), "gguf writer: key '{}': bad value type {}", key, uint32_t(v.type));
  if (v.type == GgufType::STRING) {
    check(v.strs.size() == 1, "gguf writer: key '{}': a string value holds exactly one string", key);
  } else if (v.type == GgufType::ARRAY) {
    check(v.elem != GgufType::ARRAY && uint32_t(v.elem) <= uint32_t(GgufType::F64),
          "gguf writer: key '{}': bad array element type {}", key, uint32_t(v.elem));
    if (v.elem != GgufType::STRING)
      check(v.raw.size() % scalar_size(v.elem) == 0, "gguf writer: key '{}': {} bytes is not a whole number of {}", key,
            v.raw.size(), gguf_type_name(v.elem));
  } else {
    check(v.raw.size() == scalar_size(v.type), "gguf writer: key '{}': {} value needs {} bytes, has {}", key,
          gguf_type_name(v.type), scalar_size(v.type), v.raw.size());
  }
  if (key == "general.alignment") {
    uint32_t a = 0;
    if (v.type == GgufType::U32) std::memcpy(&a, v.raw.data(), 4);
    check(a != 0 && (a & (a - 1)) == 0, "gguf writer: general.alignment must be a u32 power of 2");
  }
}

struct Out {
  std::vector<uint8_t> b;
  void append(const void* p, size_t n) {  // resize + memcpy (vector::insert trips GCC 12's -Wstringop-overflow)
    const size_t at = b.size();
    b.resize(at + n);
    if (n) std::memcpy(b.data() + at, p, n);
  }
  template <class T>
  void put(T v) {
    append(&v, sizeof(T));
  }
  void str(const std::string& s) {
    put<uint64_t>(s.size());
    append(s.data(), s.size());
  }
  void value(const GgufValue& v) {
    put<uint32_t>(uint32_t(v.type));
    if (v.type == GgufType::STRING) return str(v.strs[0]);
    if (v.type == GgufType::ARRAY) {
      put<uint32_t>(uint32_t(v.elem));
      put<uint64_t>(v.size());
      if (v.elem == GgufType::STRING)
        for (const auto& s : v.strs) str(s);
    }
    append(v.raw.data(), v.raw.size());
  }
};

size_t align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }
}  // namespace

void GgufWriter::set(const std::string& key, GgufValue v) {
  check_value(key, v);
  for (auto& [k, old] : kv_)
    if (k == key) {
      old = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}

uint32_t GgufWriter::alignment() const {
  for (const auto& [k, v] : kv_)
    if (k == "general.alignment") {
      uint32_t a;
      std::memcpy(&a, v.raw.data(), 4);
      return a;
    }
  return 32;
}

void GgufWriter::add_tensor_view(const std::string& name, GgmlType type, std::vector<int64_t> ne, const void* data,
                                 size_t nbytes) {
  check(!name.empty() && name.size() <= kMaxTensorName, "gguf writer: tensor name '{}' must have 1 to {} bytes", name,
        kMaxTensorName);
  for (const auto& t : tensors_) check(t.name != name, "gguf writer: tensor '{}' added twice", name);
  check(!ne.empty() && ne.size() <= 4, "gguf writer: tensor '{}' has {} dimensions (1 to 4 allowed)", name, ne.size());
  const GgmlTypeTraits* tr = ggml_type_traits(uint32_t(type));
  check(tr != nullptr, "gguf writer: tensor '{}': unsupported type id {}", name, uint32_t(type));
  int64_t rows = 1;
  for (size_t d = 1; d < ne.size(); d++) rows *= ne[d];
  check(ne[0] % tr->block_size == 0, "gguf writer: tensor '{}': {} columns is not a multiple of the {} block size {}",
        name, ne[0], tr->name, tr->block_size);
  const size_t want = size_t(rows) * ggml_row_size(type, ne[0]);
  check(nbytes == want, "gguf writer: tensor '{}' [{}] {} needs {} bytes, got {}", name, fmt::join(ne, ", "), tr->name,
        want, nbytes);
  tensors_.push_back({name, type, std::move(ne), {}, static_cast<const uint8_t*>(data), nbytes});
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, const void* data,
                            size_t nbytes) {
  add_tensor_view(name, type, std::move(ne), data, nbytes);
  Tensor& t = tensors_.back();
  t.own.assign(t.data, t.data + nbytes);
  t.data = t.own.data();
}

std::vector<uint8_t> GgufWriter::header(std::vector<uint64_t>* offsets) const {
  const size_t al = alignment();
  Out o;
  o.append("GGUF", 4);
  o.put<uint32_t>(3);
  o.put<uint64_t>(tensors_.size());
  o.put<uint64_t>(kv_.size());
  for (const auto& [k, v] : kv_) {
    o.str(k);
    o.value(v);
  }
  size_t off = 0;
  for (const auto& t : tensors_) {
    o.str(t.name);
    o.put<uint32_t>(uint32_t(t.ne.size()));
    for (auto d : t.ne) o.put<uint64_t>(uint64_t(d));
    o.put<uint32_t>(uint32_t(t.type));
    o.put<uint64_t>(off);
    offsets->push_back(off);
    off = align_up(off + t.nbytes, al);
  }
  o.b.resize(align_up(o.b.size(), al), 0);
  return std::move(o.b);
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint64_t> offsets;
  std::vector<uint8_t> out = header(&offsets);
  const size_t data_start = out.size(), al = alignment();
  for (size_t i = 0; i < tensors_.size(); i++) {
    out.resize(data_start + align_up(offsets[i] + tensors_[i].nbytes, al), 0);
    std::memcpy(out.data() + data_start + offsets[i], tensors_[i].data, tensors_[i].nbytes);
  }
  return out;
}

void GgufWriter::write(const std::string& path) const {
  std::vector<uint64_t> offsets;
  const std::vector<uint8_t> head = header(&offsets);
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("{}: cannot create ({})", tmp, std::strerror(errno));
  const std::vector<uint8_t> zeros(alignment(), 0);
  bool ok = std::fwrite(head.data(), 1, head.size(), f) == head.size();
  for (size_t i = 0; ok && i < tensors_.size(); i++) {
    const Tensor& t = tensors_[i];
    const size_t pad = align_up(t.nbytes, zeros.size()) - t.nbytes;
    ok = std::fwrite(t.data, 1, t.nbytes, f) == t.nbytes && std::fwrite(zeros.data(), 1, pad, f) == pad;
  }
  ok = (std::fflush(f) == 0) && ok;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    fail("{}: write failed ({})", path, std::strerror(err));
  }
}

}  // namespace lmp

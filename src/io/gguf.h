// GGUF (llama.cpp's model file) reading (mmap, zero-copy, validated) and writing (atomic).
//
// Layout (all little-endian), versions 2 and 3:
//   "GGUF" u32 version, u64 n_tensors, u64 n_kv
//   n_kv × { string key, u32 value type, value }      string = u64 length + bytes (no terminator)
//                                                       array  = u32 element type, u64 count, elements
//   n_tensors × { string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset }
//   padding to general.alignment (u32 key, default 32), then the data section; each tensor's offset is
//   relative to the data section and a multiple of the alignment.
// Shapes are in ggml order: ne[0] is the innermost (contiguous) dimension, so a Linear weight of
// (rows = out, cols = in) has ne = {cols, rows}. Tensor data is rows of ggml blocks (kernels/ggml_blocks.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/mmap_file.h"
#include "kernels/ggml_blocks.h"

namespace lmp {

enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);  // "u32", "string", "array", ...

// One metadata value: a scalar, a string, or an array of scalars or strings (nested arrays unsupported).
// Scalars and scalar arrays keep their little-endian bytes, so a read-then-write round trip is bit-exact.
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType elem = GgufType::U8;   // element type when type == ARRAY
  std::vector<uint8_t> raw;       // scalar bytes, or the packed elements of a scalar array
  std::vector<std::string> strs;  // the string (type STRING) or the elements of a string array

  bool is_array() const { return type == GgufType::ARRAY; }
  size_t size() const;  // element count of an array, 1 otherwise

  // Builders: GgufValue::of(GgufType::U32, 7u), GgufValue::array(GgufType::F32, scores), ...
  template <class T>
  static GgufValue of(GgufType t, T v);
  template <class T>
  static GgufValue array(GgufType elem, const std::vector<T>& v);
  static GgufValue string(std::string s);
  static GgufValue strings(std::vector<std::string> v);
};

struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;        // ggml order, ne[0] innermost
  uint64_t offset = 0;            // from the start of the data section
  const uint8_t* data = nullptr;  // into the mapped file / parsed buffer
  size_t nbytes = 0;

  int64_t numel() const;
  int64_t cols() const { return ne.empty() ? 1 : ne[0]; }  // elements per row
  int64_t rows() const { return numel() / std::max<int64_t>(cols(), 1); }
  std::vector<int64_t> shape() const;  // row-major order (reverse of ne), as safetensors/PyTorch write it
  const GgmlTypeTraits& traits() const { return ggml_traits(type); }
  std::vector<float> to_f32() const;   // dequantized, row-major
};

// Everything a GGUF header says; tensor data pointers point into the buffer that was parsed.
struct GgufContents {
  uint32_t version = 3;
  uint32_t alignment = 32;
  size_t data_offset = 0;  // file offset of the data section
  std::vector<std::pair<std::string, GgufValue>> kv;  // file order
  std::vector<GgufTensor> tensors;                    // file order
};

// Parses and validates a whole GGUF image of size bytes (header and tensor bounds); used by GgufFile and the
// fuzzer. Throws lmp::Error naming path and the problem.
GgufContents parse_gguf(const std::string& path, const uint8_t* base, size_t size);

class GgufFile {
 public:
  explicit GgufFile(const std::string& path);  // mmap + parse_gguf
  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return c_.version; }
  uint32_t alignment() const { return c_.alignment; }
  size_t data_offset() const { return c_.data_offset; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return c_.kv; }
  const std::vector<GgufTensor>& tensors() const { return c_.tensors; }

  // Metadata lookup; nullptr when absent.
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters; throw lmp::Error naming the file and key when absent or of an incompatible type.
  // Integers accept any integer type whose value fits; floats accept f32 and f64.
  std::string get_string(const std::string& key) const;
  uint64_t get_uint(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;
  bool get_bool(const std::string& key) const;
  uint64_t get_uint(const std::string& key, uint64_t fallback) const { return has(key) ? get_uint(key) : fallback; }
  double get_float(const std::string& key, double fallback) const { return has(key) ? get_float(key) : fallback; }
  std::vector<std::string> get_strings(const std::string& key) const;  // array of strings
  std::vector<float> get_floats(const std::string& key) const;         // array of f32/f64
  std::vector<int64_t> get_ints(const std::string& key) const;         // array of any integer type

  const GgufTensor* find_tensor(const std::string& name) const;
  const GgufTensor& tensor(const std::string& name) const;  // throws lmp::Error naming the file when absent

 private:
  const GgufValue& need(const std::string& key) const;
  MmapFile file_;
  GgufContents c_;
  std::map<std::string, size_t> kv_index_, tensor_index_;
};

class GgufWriter {
 public:
  // Adds or replaces a key (first insertion fixes its position). "general.alignment" must be a u32 power of 2
  // and sets the alignment the tensors are written with (default 32).
  void set(const std::string& key, GgufValue v);
  void set_string(const std::string& key, std::string s) { set(key, GgufValue::string(std::move(s))); }
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufValue::of(GgufType::U32, v)); }
  void set_f32(const std::string& key, float v) { set(key, GgufValue::of(GgufType::F32, v)); }
  // Copies data; ne in ggml order (ne[0] innermost); nbytes must equal what type and ne need.
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne, const void* data, size_t nbytes);
  // As add_tensor, but borrows data, which must stay valid until write/serialize.
  void add_tensor_view(const std::string& name, GgmlType type, std::vector<int64_t> ne, const void* data,
                       size_t nbytes);
  uint32_t alignment() const;
  std::vector<uint8_t> serialize() const;  // the whole file image (GGUF v3)
  void write(const std::string& path) const;  // streamed to "<path>.tmp", then renamed

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> own;
    const uint8_t* data;
    size_t nbytes;
  };
  std::vector<uint8_t> header(std::vector<uint64_t>* offsets) const;  // KV + tensor infos + padding
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::vector<Tensor> tensors_;
};

// ---------------------------------------------------------------------------------------------------

template <class T>
GgufValue GgufValue::of(GgufType t, T v) {
  static_assert(std::is_arithmetic_v<T>);
  GgufValue g;
  g.type = t;
  g.raw.resize(sizeof(T));
  std::memcpy(g.raw.data(), &v, sizeof(T));
  return g;
}

template <class T>
GgufValue GgufValue::array(GgufType elem, const std::vector<T>& v) {
  static_assert(std::is_arithmetic_v<T>);
  GgufValue g;
  g.type = GgufType::ARRAY;
  g.elem = elem;
  g.raw.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(g.raw.data(), v.data(), g.raw.size());
  return g;
}

}  // namespace lmp

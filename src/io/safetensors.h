// safetensors reading (mmap, zero-copy, validated) and writing (atomic).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[a,b]},
// "__metadata__": {str: str}}, then the data section; offsets are relative to the data section.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mmap_file.h"

namespace lmp {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, U16, U32, BOOL };
size_t dtype_size(DType t);
const char* dtype_name(DType t);   // safetensors spelling: "F32", "BF16", ...
bool dtype_from_name(const std::string& s, DType* out);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  int64_t numel() const;
  // Copies/converts the tensor (F32/F16/BF16/F64) to f32. Throws for other dtypes.
  std::vector<float> to_f32() const;
};

class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::string& path);  // validates everything, throws lmp::Error
  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  MmapFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates a header against a file of file_size bytes; used by SafeTensorsFile and the fuzzer.
// On success fills tensors (data pointers relative to base) and metadata.
void parse_safetensors_header(const std::string& path, const uint8_t* base, size_t file_size,
                              std::map<std::string, TensorView>* tensors,
                              std::map<std::string, std::string>* metadata);

class SafeTensorsWriter {
 public:
  // Copies the bytes. Names must be unique.
  void add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
  void add_f32(const std::string& name, std::vector<int64_t> shape, const float* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;  // atomic (tmp + rename)
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::map<std::string, Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lmp

// Read-only memory-mapped file (zero-copy loading of checkpoints).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace lmp {

class MmapFile {
 public:
  explicit MmapFile(const std::string& path);  // throws lmp::Error naming the path
  ~MmapFile();
  MmapFile(const MmapFile&) = delete;
  MmapFile& operator=(const MmapFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Whole file as bytes / text; throws lmp::Error naming the path.
std::string read_file(const std::string& path);
// Writes to "<path>.tmp" then renames, so a failed write never leaves a half-written file at path.
void write_file_atomic(const std::string& path, const void* data, size_t n);
bool file_exists(const std::string& path);

// Streams bytes to "<path>.tmp"; commit() flushes and renames onto path. Destroyed without commit (an
// exception on the way), the temporary file is removed: path is never half-written.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  FILE* f_ = nullptr;
};

}  // namespace lmp

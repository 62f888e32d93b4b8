#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"

namespace lmp {

namespace {
struct DTypeRow {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeRow kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2}, {DType::BF16, "BF16", 2},
    {DType::I64, "I64", 8}, {DType::I32, "I32", 4}, {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},   {DType::U16, "U16", 2}, {DType::U32, "U32", 4}, {DType::BOOL, "BOOL", 1},
};
}  // namespace

size_t dtype_size(DType t) {
  for (const auto& r : kDTypes)
    if (r.t == t) return r.size;
  return 0;
}
const char* dtype_name(DType t) {
  for (const auto& r : kDTypes)
    if (r.t == t) return r.name;
  return "?";
}
bool dtype_from_name(const std::string& s, DType* out) {
  for (const auto& r : kDTypes)
    if (s == r.name) {
      *out = r.t;
      return true;
    }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<float> TensorView::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  switch (dtype) {
    case DType::F32: std::memcpy(out.data(), data, out.size() * 4); break;
    case DType::F16:
      for (size_t i = 0; i < out.size(); i++) {
        f16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = f16_to_f32(h);
      }
      break;
    case DType::BF16:
      for (size_t i = 0; i < out.size(); i++) {
        bf16_t h;
        std::memcpy(&h, data + 2 * i, 2);
        out[i] = bf16_to_f32(h);
      }
      break;
    case DType::F64:
      for (size_t i = 0; i < out.size(); i++) {
        double d;
        std::memcpy(&d, data + 8 * i, 8);
        out[i] = float(d);
      }
      break;
    default: fail("tensor {}: dtype {} cannot be read as float", name, dtype_name(dtype));
  }
  return out;
}

void parse_safetensors_header(const std::string& path, const uint8_t* base, size_t file_size,
                              std::map<std::string, TensorView>* tensors,
                              std::map<std::string, std::string>* metadata) {
  check(file_size >= 8, "{}: truncated file ({} bytes, no header length)", path, file_size);
  uint64_t n = 0;
  std::memcpy(&n, base, 8);
  check(n <= file_size - 8, "{}: header length {} runs past the end of the file ({} bytes)", path, n, file_size);
  check(n <= (100u << 20), "{}: header length {} is over 100 MiB", path, n);
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(base + 8, base + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: header is not valid JSON ({})", path, e.what());
  }
  check(h.is_object(), "{}: header is not a JSON object", path);
  const uint8_t* data = base + 8 + n;
  const size_t data_size = file_size - 8 - n;
  std::vector<std::pair<size_t, size_t>> spans;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "__metadata__") {
      check(v.is_object(), "{}: __metadata__ is not an object", path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        check(m.value().is_string(), "{}: __metadata__.{} is not a string", path, m.key());
        (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    check(v.is_object() && v.contains("dtype") && v.contains("shape") && v.contains("data_offsets"),
          "{}: tensor {}: entry needs dtype, shape and data_offsets", path, key);
    TensorView t;
    t.name = key;
    check(v["dtype"].is_string() && dtype_from_name(v["dtype"].get<std::string>(), &t.dtype),
          "{}: tensor {}: unknown dtype {}", path, key, v["dtype"].dump());
    check(v["shape"].is_array(), "{}: tensor {}: shape is not an array", path, key);
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      check(d.is_number_unsigned(), "{}: tensor {}: shape has a non-integer or negative dimension", path, key);
      uint64_t dim = d.get<uint64_t>();
      check(dim <= (uint64_t(1) << 40) && (dim == 0 || numel <= (uint64_t(1) << 48) / dim),
            "{}: tensor {}: shape too large", path, key);
      numel *= dim;
      t.shape.push_back(int64_t(dim));
    }
    const auto& off = v["data_offsets"];
    check(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
          "{}: tensor {}: data_offsets must be two non-negative integers", path, key);
    uint64_t a = off[0].get<uint64_t>(), b = off[1].get<uint64_t>();
    check(a <= b, "{}: tensor {}: data_offsets [{}, {}] are reversed", path, key, a, b);
    check(b <= data_size, "{}: tensor {}: data [{}, {}) runs past the end of the file (data section is {} bytes; file truncated?)",
          path, key, a, b, data_size);
    check(b - a == numel * dtype_size(t.dtype), "{}: tensor {}: shape [{}] x {} needs {} bytes but data_offsets span {}",
          path, key, fmt::join(t.shape, ", "), dtype_name(t.dtype), numel * dtype_size(t.dtype), b - a);
    t.data = data + a;
    t.nbytes = size_t(b - a);
    spans.emplace_back(size_t(a), size_t(b));
    (*tensors)[key] = std::move(t);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); i++)
    check(spans[i].first >= spans[i - 1].second, "{}: tensors overlap in the data section (bytes {} to {})", path,
          spans[i].first, spans[i - 1].second);
}

SafeTensorsFile::SafeTensorsFile(const std::string& path) : file_(path) {
  parse_safetensors_header(path, file_.data(), file_.size(), &tensors_, &metadata_);
}

const TensorView* SafeTensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

void SafeTensorsWriter::add(const std::string& name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
  check(!entries_.count(name), "safetensors writer: tensor {} added twice", name);
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  check(size_t(numel) * dtype_size(dtype) == nbytes, "safetensors writer: tensor {}: {} bytes for shape [{}] {}",
        name, nbytes, fmt::join(shape, ", "), dtype_name(dtype));
  Entry e{dtype, std::move(shape), {}};
  e.bytes.assign(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + nbytes);
  entries_.emplace(name, std::move(e));
}

void SafeTensorsWriter::add_f32(const std::string& name, std::vector<int64_t> shape, const float* data) {
  int64_t numel = 1;
  for (auto d : shape) numel *= d;
  add(name, DType::F32, std::move(shape), data, size_t(numel) * 4);
}

void SafeTensorsWriter::write(const std::string& path) const {
  nlohmann::json h = nlohmann::json::object();
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  size_t off = 0;
  // Tensors laid out in name order; each aligned to 64 bytes (padding stays inside no tensor's span).
  std::vector<std::pair<const Entry*, size_t>> layout;
  for (const auto& [name, e] : entries_) {
    off = (off + 63) / 64 * 64;
    h[name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {off, off + e.bytes.size()}}};
    layout.emplace_back(&e, off);
    off += e.bytes.size();
  }
  std::string hs = h.dump();
  // Pad the header with spaces so the data section starts 64-byte aligned (as the format allows).
  while ((8 + hs.size()) % 64) hs.push_back(' ');
  // Streamed to <path>.tmp, then renamed: no second in-memory copy of multi-GB models, no half-written file.
  AtomicFileWriter out(path);
  uint64_t n = hs.size();
  out.write(&n, 8);
  out.write(hs.data(), hs.size());
  size_t pos = 0;
  static const uint8_t zeros[64] = {};
  for (auto& [e, o] : layout) {
    out.write(zeros, o - pos);
    out.write(e->bytes.data(), e->bytes.size());
    pos = o + e->bytes.size();
  }
  out.commit();
}

}  // namespace lmp

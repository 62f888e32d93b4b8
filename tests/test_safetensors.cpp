// safetensors reading/writing: bit-exact round trip, and every malformed input rejected with an lmp::Error
// that names the file (the CLI turns it into exit status 2; see test_cli).
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "core/mmap_file.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "testutil.h"

using namespace lmp;

namespace {

std::string write_raw(const std::string& dir, const std::string& header, size_t data_bytes, const char* name = "x.safetensors") {
  std::string path = dir + "/" + name;
  std::string buf(8, '\0');
  uint64_t n = header.size();
  std::memcpy(buf.data(), &n, 8);
  buf += header;
  buf.append(data_bytes, '\x01');
  write_file_atomic(path, buf.data(), buf.size());
  return path;
}

void expect_error(const std::string& path, const std::string& fragment) {
  try {
    SafeTensorsFile f(path);
    FAIL() << "no error for " << fragment;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

}  // namespace

TEST(SafeTensors, RoundTripIsBitExact) {
  std::string dir = test::temp_dir("st");
  SafeTensorsWriter w;
  auto a = test::random_vector(33 * 7, 1);
  std::vector<uint16_t> h = {1, 2, 3, 65535};
  std::vector<int8_t> q = {-128, 0, 127};
  w.add_f32("a", {33, 7}, a.data());
  w.add("h", DType::F16, {2, 2}, h.data(), 8);
  w.add("q", DType::I8, {3}, q.data(), 3);
  w.add("empty", DType::F32, {0, 4}, nullptr, 0);
  w.set_metadata("format", "pt");
  w.write(dir + "/m.safetensors");
  SafeTensorsFile f(dir + "/m.safetensors");
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorView* ta = f.find("a");
  ASSERT_TRUE(ta);
  EXPECT_EQ(ta->shape, (std::vector<int64_t>{33, 7}));
  EXPECT_EQ(std::memcmp(ta->data, a.data(), a.size() * 4), 0);
  EXPECT_EQ(std::memcmp(f.find("h")->data, h.data(), 8), 0);
  EXPECT_EQ(std::memcmp(f.find("q")->data, q.data(), 3), 0);
  EXPECT_EQ(f.find("empty")->nbytes, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta->data) % 64, 0u) << "data aligned for SIMD loads";
  EXPECT_FALSE(test::exists(dir + "/m.safetensors.tmp"));
}

TEST(SafeTensors, RejectsMalformedFiles) {
  std::string dir = test::temp_dir("stbad");
  {  // shorter than the 8-byte length prefix
    std::string p = dir + "/short.safetensors";
    write_file_atomic(p, "abc", 3);
    expect_error(p, "truncated");
  }
  {  // header length past EOF
    std::string p = dir + "/hdr.safetensors";
    std::string buf(8, '\0');
    uint64_t n = 1000;
    std::memcpy(buf.data(), &n, 8);
    buf += "{}";
    write_file_atomic(p, buf.data(), buf.size());
    expect_error(p, "past the end of the file");
  }
  expect_error(write_raw(dir, "{not json", 0, "json.safetensors"), "not valid JSON");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", 8, "dtype.safetensors"),
               "unknown dtype");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "bytes.safetensors"),
               "needs 12 bytes");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                         12, "overlap.safetensors"),
               "overlap");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8, "trunc.safetensors"),
               "runs past the end");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4, "neg.safetensors"),
               "non-integer or negative");
  expect_error(write_raw(dir, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8, "rev.safetensors"),
               "reversed");
  expect_error(write_raw(dir, R"({"a":{"shape":[1]}})", 4, "fields.safetensors"), "needs dtype");
}

TEST(SafeTensors, ShardedCheckpointAndMissingTensor) {
  std::string dir = test::temp_dir("shard");
  auto a = test::random_vector(8, 2), b = test::random_vector(4, 3);
  SafeTensorsWriter w1, w2;
  w1.add_f32("a", {8}, a.data());
  w2.add_f32("b", {4}, b.data());
  w1.write(dir + "/model-00001-of-00002.safetensors");
  w2.write(dir + "/model-00002-of-00002.safetensors");
  std::string idx = R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})";
  write_file_atomic(dir + "/model.safetensors.index.json", idx.data(), idx.size());
  Checkpoint ck(dir);
  EXPECT_EQ(ck.get("b").to_f32(), b);
  EXPECT_TRUE(ck.has("a"));
  try {
    ck.get("c");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing tensor c"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("index.json"), std::string::npos);
  }
}

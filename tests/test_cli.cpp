// The command-line contract of models/README.md: bad input → exit 2 and one error line naming the file and
// problem; outputs of the documented forms; compressed/copied models reload.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/mmap_file.h"
#include "testutil.h"

using namespace lmp;
namespace fs = std::filesystem;

namespace {

// Copy of a tiny random model into a fresh dir, then `mutate` damages it.
std::string damaged(const std::string& tag, const std::function<void(const std::string&)>& mutate) {
  std::string dir = test::temp_dir(tag);
  test::write_tiny_model(dir, {});
  mutate(dir);
  return dir;
}

void expect_exit2(const std::string& args, const std::string& fragment) {
  std::string out, err;
  int rc = test::run_lmpress(args, &out, &err);
  EXPECT_EQ(rc, 2) << args << "\nstderr: " << err;
  EXPECT_NE(err.find(fragment), std::string::npos) << "stderr: " << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "exactly one error line: " << err;
}

void edit_config(const std::string& dir, const std::function<void(nlohmann::json&)>& f) {
  auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
  f(j);
  std::string s = j.dump();
  write_file_atomic(dir + "/config.json", s.data(), s.size());
}

}  // namespace

TEST(Cli, BadInputExitsTwoWithNamedError) {
  expect_exit2("inspect /nonexistent/dir", "/nonexistent/dir");
  std::string trunc = damaged("trunc", [](const std::string& d) { fs::resize_file(d + "/model.safetensors", 5000); });
  expect_exit2("inspect " + trunc, "model.safetensors");
  std::string nocfg = damaged("nocfg", [](const std::string& d) { fs::remove(d + "/config.json"); });
  expect_exit2("inspect " + nocfg, "missing config.json");
  std::string field = damaged("field", [](const std::string& d) { edit_config(d, [](auto& j) { j.erase("hidden_size"); }); });
  expect_exit2("inspect " + field, "missing field 'hidden_size'");
  std::string arch = damaged("arch", [](const std::string& d) {
    edit_config(d, [](auto& j) { j["architectures"] = {"BertModel"}; });
  });
  expect_exit2("inspect " + arch, "unknown architecture 'BertModel'");
  std::string shape = damaged("shape", [](const std::string& d) {
    edit_config(d, [](auto& j) { j["intermediate_size"] = 40; });
  });
  expect_exit2("inspect " + shape, "mlp.gate_proj");
  expect_exit2("frobnicate", "unknown command");
  expect_exit2("inspect " + trunc + " --bogus 1", "unknown option --bogus");
}

TEST(Cli, InspectJsonCountsParamsAndBytes) {
  std::string dir = test::temp_dir("inspect");
  test::TinySpec s;
  test::write_tiny_model(dir, s);
  std::string out;
  ASSERT_EQ(test::run_lmpress("inspect " + dir + " --json", &out), 0);
  auto j = nlohmann::json::parse(out);
  const int64_t C = 32, hs = 8, F = 48, V = 64, L = 2;
  int64_t per_layer = 2 * C + 4 * hs * C + 2 * 2 * hs * C + 4 * hs * C + 3 * F * C;
  int64_t params = V * C + C + L * per_layer + V * C;
  EXPECT_EQ(j["params"].get<int64_t>(), params);
  EXPECT_EQ(j["bytes"].get<int64_t>(), params * 4);
  EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 32.0);
}

TEST(Cli, EvalPplAndGenerateOnSharedModel) {
  std::string model = LMP_REQUIRE_SHARED("models/stories260K");
  std::string data = test::shared_dir() + "/data/tinystories/eval.txt";
  std::string out, err;
  ASSERT_EQ(test::run_lmpress("generate --model " + model + " --max-new-tokens 256 --temperature 0", &out, &err), 0) << err;
  std::string want = read_file(model + "/reference/generate_greedy.txt");
  auto squash = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  };
  EXPECT_EQ(squash(out), squash(want));
  ASSERT_EQ(test::run_lmpress("eval ppl --model " + model + " --data " + data + " --format docs --ctx 512 --json", &out, &err), 0) << err;
  auto j = nlohmann::json::parse(out);
  EXPECT_NEAR(j["ppl"].get<double>(), 4.21135, 4.21135 * 1e-3) << "models/README.md reference, within 0.1%";
  EXPECT_EQ(j["tokens"].get<long>(), 458828);
  EXPECT_EQ(j["windows"].get<long>(), 896);
}

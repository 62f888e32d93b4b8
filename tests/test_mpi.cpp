// Data-parallel calibration and perplexity (issue 10, calib/dist.h): `mpirun -np 2 lmpress ...` must write
// byte-identical outputs and print the identical perplexity as one process, because statistics and NLL sums
// are reduced in global sample/window order. Compiled always; skipped unless built with -DLMP_MPI=ON and an
// mpirun is found.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "testutil.h"

namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string mpirun_path() {
#ifdef LMP_MPIRUN
  if (fs::exists(LMP_MPIRUN)) return LMP_MPIRUN;
#endif
  return std::system("command -v mpirun >/dev/null 2>&1") == 0 ? "mpirun" : "";
}

// Runs lmpress under mpirun with np ranks (np 0: plain process, no launcher). Thread counts are pinned so
// the 1-process and the N-rank runs do the same per-rank arithmetic in the modifiers' BLAS/LAPACK calls.
int run_np(int np, const std::string& args, std::string* out, std::string* err) {
  std::string dir = lmp::test::temp_dir(fmt::format("mpi-run-{}", np));
  std::string env = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1";
  std::string launcher =
      np > 0 ? fmt::format("{} --allow-run-as-root --oversubscribe -np {} -x OMP_NUM_THREADS -x OPENBLAS_NUM_THREADS ",
                           mpirun_path(), np)
             : "";
  std::string cmd = fmt::format("{} {}{} {} >{}/o 2>{}/e", env, launcher, LMP_BINARY, args, dir, dir);
  int st = std::system(cmd.c_str());
  if (out) *out = slurp(dir + "/o");
  if (err) *err = slurp(dir + "/e");
  fs::remove_all(dir);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

class Mpi : public ::testing::Test {
 protected:
  void SetUp() override {
#ifndef LMP_WITH_MPI
    GTEST_SKIP() << "built without MPI: configure with -DLMP_MPI=ON (apt-get install libopenmpi-dev openmpi-bin)";
#endif
    if (mpirun_path().empty()) GTEST_SKIP() << "mpirun not found on PATH (apt-get install openmpi-bin)";
    src = LMP_SOURCE_DIR;
    model = src + "/models/stories260K";
    calib = src + "/data/tinystories-demo-calib.txt";
    tmp = lmp::test::temp_dir("mpi");
  }
  void TearDown() override {
    if (!tmp.empty()) fs::remove_all(tmp);
  }
  // Runs `cmd` (a compress shortcut writing -o OUT) with 1 process and with 2 ranks; outputs must be equal.
  void expect_identical(const std::string& cmd) {
    std::string o1 = tmp + "/one", o2 = tmp + "/two", err;
    ASSERT_EQ(run_np(0, cmd + " -o " + o1, nullptr, &err), 0) << err;
    ASSERT_EQ(run_np(2, cmd + " -o " + o2, nullptr, &err), 0) << err;
    for (const char* f : {"model.safetensors", "config.json"}) {
      std::string a = slurp(o1 + "/" + f), b = slurp(o2 + "/" + f);
      ASSERT_FALSE(a.empty()) << f;
      EXPECT_TRUE(a == b) << f << " differs between 1 and 2 ranks";
    }
    EXPECT_FALSE(fs::exists(o2 + ".tmp-lmpress"));
  }
  std::string src, model, calib, tmp;
};

TEST_F(Mpi, GptqTwoRanksBitIdentical) {
  expect_identical(fmt::format("quantize --model {} --method gptq --bits 4 --group 32 --calib {} --nsamples 8 "
                               "--seqlen 128 --seed 3", model, calib));
}

TEST_F(Mpi, SparseGptTwoRanksBitIdentical) {
  expect_identical(fmt::format("prune --model {} --method sparsegpt --sparsity 0.5 --calib {} --nsamples 8 "
                               "--seqlen 128 --seed 3", model, calib));
}

TEST_F(Mpi, WandaThreeRanksUnevenShards) {  // 8 samples over 3 ranks: shards 3, 3, 2; channel stats + max
  std::string cmd = fmt::format("prune --model {} --method wanda --sparsity 0.5 --calib {} --nsamples 8 "
                                "--seqlen 64 --seed 3", model, calib);
  std::string o1 = tmp + "/w1", o3 = tmp + "/w3", err;
  ASSERT_EQ(run_np(0, cmd + " -o " + o1, nullptr, &err), 0) << err;
  ASSERT_EQ(run_np(3, cmd + " -o " + o3, nullptr, &err), 0) << err;
  EXPECT_TRUE(slurp(o1 + "/model.safetensors") == slurp(o3 + "/model.safetensors"));
}

TEST_F(Mpi, PerplexityTwoRanksIdentical) {
  std::string eval = src + "/data/tinystories-demo-eval.txt";
  std::string cmd = fmt::format("eval ppl --model {} --data {} --format text --ctx 128 --json --quiet", model, eval);
  std::string out1, out2, err;
  ASSERT_EQ(run_np(0, cmd, &out1, &err), 0) << err;
  ASSERT_EQ(run_np(2, cmd, &out2, &err), 0) << err;
  auto j1 = nlohmann::json::parse(out1), j2 = nlohmann::json::parse(out2);  // one JSON object: rank 0 only
  EXPECT_EQ(j1["nll"].get<double>(), j2["nll"].get<double>());
  EXPECT_EQ(j1["ppl"].get<double>(), j2["ppl"].get<double>());
  EXPECT_EQ(j1["scored"], j2["scored"]);
  EXPECT_EQ(j1["windows"], j2["windows"]);
  EXPECT_EQ(j2["ranks"], 2);
}

TEST_F(Mpi, MoreRanksThanSamplesFailsClearly) {
  std::string out = tmp + "/few", err;
  int rc = run_np(2, fmt::format("quantize --model {} --method gptq --calib {} --nsamples 1 --seqlen 64 -o {}",
                                 model, calib, out), nullptr, &err);
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("2 ranks but only 1 calibration samples"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(Mpi, RankLocalSearchIsCaughtByChecksum) {
  // AWQ searches its scales on ctx.inputs, which are rank-local: ranks end up with different weights and the
  // cross-rank checksum must stop the run (MPI_Abort) before anything is written.
  std::string out = tmp + "/awq", err;
  int rc = run_np(2, fmt::format("quantize --model {} --method awq --bits 4 --group 32 --calib {} --nsamples 4 "
                                 "--seqlen 64 --seed 3 -o {}", model, calib, out), nullptr, &err);
  EXPECT_NE(rc, 0);
  EXPECT_NE(err.find("holds different weights"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp-lmpress"));
}

}  // namespace

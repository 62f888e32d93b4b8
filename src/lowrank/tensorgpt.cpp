#include "lowrank/tensorgpt.h"

#include <cstdio>

#include <fmt/ranges.h>

#include "core/error.h"
#include "lowrank/truncated_svd.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<int64_t> default_tt_shape(int64_t n) {
  std::vector<int64_t> d;
  while (n > 1 && n % 4 == 0) d.push_back(4), n /= 4;
  for (int64_t p = 2; n > 1; p++)
    while (n % p == 0) d.push_back(p), n /= p;
  if (d.empty()) d.push_back(1);
  return d;
}

std::vector<int64_t> tt_rank_profile(const std::vector<int64_t>& shape, int64_t max_rank) {
  const size_t K = shape.size();
  std::vector<int64_t> r(K + 1, 1);
  int64_t left = 1;
  for (size_t j = 0; j + 1 < K; j++) {
    left *= shape[j];
    int64_t right = 1;
    for (size_t i = j + 1; i < K; i++) right *= shape[i];
    r[j + 1] = std::min({max_rank, left, right});
  }
  return r;
}

std::vector<std::vector<double>> tt_svd(const double* v, const std::vector<int64_t>& shape, int64_t max_rank,
                                        double* discarded) {
  const size_t K = shape.size();
  const std::vector<int64_t> r = tt_rank_profile(shape, max_rank);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<std::vector<double>> cores(K);
  std::vector<double> C(v, v + n);  // the remainder, (r_{j-1}·d_j) × rest
  int64_t rest = n;
  double lost = 0;
  for (size_t j = 0; j + 1 < K; j++) {
    const int64_t rows = r[j] * shape[j];
    rest /= shape[j];
    Svd s = thin_svd(C, rows, rest, "tensorgpt TT-SVD");
    const int64_t k = r[j + 1];
    for (int64_t i = k; i < s.p; i++) lost += s.s[size_t(i)] * s.s[size_t(i)];
    cores[j].resize(size_t(rows * k));  // U_{:, :k} viewed (r_{j-1}, d_j, r_j)
    for (int64_t a = 0; a < rows; a++)
      for (int64_t b = 0; b < k; b++) cores[j][size_t(a * k + b)] = s.U[size_t(a * s.p + b)];
    C.assign(size_t(k * rest), 0.0);  // Σ_{:k} V_{:k}ᵀ, (r_j, rest)
    for (int64_t b = 0; b < k; b++)
      for (int64_t c = 0; c < rest; c++) C[size_t(b * rest + c)] = s.s[size_t(b)] * s.Vt[size_t(b * rest + c)];
  }
  cores[K - 1] = std::move(C);  // (r_{K-1}, d_K, 1)
  if (discarded) *discarded = lost;
  return cores;
}

std::unique_ptr<TTRowsMatrix> tensorgpt_compress(const float* E, int64_t rows, int64_t cols,
                                                 const std::vector<int64_t>& shape, int64_t max_rank,
                                                 const std::string& what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    check(d >= 1, "{}: tt_shape [{}] has a mode below 1", what, fmt::join(shape, ", "));
    n *= d;
  }
  check(!shape.empty() && n == cols, "{}: tt_shape [{}] multiplies to {}, the rows have {} values", what,
        fmt::join(shape, ", "), n, cols);
  check(max_rank >= 1, "{}: tt_rank {} must be ≥ 1", what, max_rank);
  const std::vector<int64_t> ranks = tt_rank_profile(shape, max_rank);
  const size_t K = shape.size();
  std::vector<std::vector<float>> cores(K);
  for (size_t j = 0; j < K; j++) cores[j].resize(size_t(rows * ranks[j] * shape[j] * ranks[j + 1]));
#pragma omp parallel for schedule(dynamic, 16)
  for (int64_t v = 0; v < rows; v++) {
    std::vector<double> row = to_double(E + v * cols, size_t(cols));
    std::vector<std::vector<double>> g = tt_svd(row.data(), shape, max_rank);
    for (size_t j = 0; j < K; j++) std::copy(g[j].begin(), g[j].end(), cores[j].begin() + v * int64_t(g[j].size()));
  }
  return std::make_unique<TTRowsMatrix>(rows, shape, ranks, std::move(cores));
}

namespace {

class TensorGptModifier final : public BlockModifier {
 public:
  explicit TensorGptModifier(const nlohmann::json& st)
      : rank_(stage_int(st, "tt_rank", 0, 1, 1 << 20, "tensorgpt")) {
    check(st.contains("tt_rank"), "tensorgpt: the stage needs 'tt_rank' (the largest TT-rank, ≥ 1)");
    if (st.contains("tt_shape")) {
      check(st["tt_shape"].is_array() && !st["tt_shape"].empty(), "tensorgpt: 'tt_shape' must be a list of mode sizes");
      for (const auto& d : st["tt_shape"]) {
        check(d.is_number_integer() && d.get<int64_t>() >= 1, "tensorgpt: 'tt_shape' {} needs integers ≥ 1",
              st["tt_shape"].dump());
        shape_.push_back(d.get<int64_t>());
      }
    }
  }
  std::string name() const override { return "tensorgpt"; }
  StatsRequest stats_request() const override { return {false, false}; }
  bool needs_calibration() const override { return false; }
  void apply(BlockContext&) override {}  // the blocks stay as they are
  void apply_head(Model& m) override {
    m.require_dense_embed("tensorgpt");
    const int64_t V = m.cfg.vocab, C = m.cfg.hidden;
    std::vector<int64_t> shape = shape_.empty() ? default_tt_shape(C) : shape_;
    m.set_embed_table(tensorgpt_compress(m.embed.data(), V, C, shape, rank_, "tensorgpt (model.embed_tokens)"));
    std::fprintf(stderr, "tensorgpt: embedding %lldx%lld as tensor trains, shape [%s], ranks [%s], %lld -> %lld params\n",
                 (long long)V, (long long)C, fmt::format("{}", fmt::join(shape, ",")).c_str(),
                 fmt::format("{}", fmt::join(tt_rank_profile(shape, rank_), ",")).c_str(), (long long)(V * C),
                 (long long)m.embed_w->n_params());
    // set_embed_table dropped the dense table: lookups and a tied head run from the cores
  }

 private:
  int64_t rank_;
  std::vector<int64_t> shape_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_tensorgpt_modifier(const nlohmann::json& stage) {
  return std::make_unique<TensorGptModifier>(stage);
}

}  // namespace lmp

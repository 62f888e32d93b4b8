#include "prune/esparse.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "kernels/permuted.h"
#include "prune/prune_modifier.h"
#include "quant/quant_args.h"

namespace lmp {

ChannelHistograms::ChannelHistograms(const std::vector<float>& range, int bins)
    : range_(range), bins_(bins), counts_(range.size() * size_t(bins), 0) {
  check(bins >= 2, "esparse: {} histogram bins, want at least 2", bins);
}

void ChannelHistograms::add(const float* X, int64_t n) {
  const int64_t C = channels();
  for (int64_t t = 0; t < n; t++)
    for (int64_t j = 0; j < C; j++) {
      const float r = range_[size_t(j)];
      int k = 0;
      if (r > 0) k = int(std::floor((double(X[t * C + j]) + r) / (2.0 * r) * bins_));
      counts_[size_t(j * bins_ + std::clamp(k, 0, bins_ - 1))]++;
    }
}

double histogram_entropy(const int64_t* counts, int bins) {
  int64_t total = 0;
  for (int k = 0; k < bins; k++) total += counts[k];
  double h = 0;
  for (int k = 0; k < bins; k++)
    if (counts[k] > 0) {
      const double p = double(counts[k]) / double(total);
      h -= p * std::log(p);
    }
  return h;
}

std::vector<double> ChannelHistograms::entropy() const {
  std::vector<double> H(range_.size());
  for (size_t j = 0; j < H.size(); j++) H[j] = histogram_entropy(counts_.data() + j * size_t(bins_), bins_);
  return H;
}

std::vector<float> esparse_scores(const float* W, int64_t rows, int64_t cols, const std::vector<double>& entropy,
                                  const std::vector<double>& rms, double alpha) {
  check(int64_t(entropy.size()) == cols && int64_t(rms.size()) == cols, "esparse: {} entropies / {} norms for {} inputs",
        entropy.size(), rms.size(), cols);
  std::vector<float> S(size_t(rows * cols));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++)
      S[size_t(r * cols + c)] = float(std::fabs(double(W[r * cols + c])) * (entropy[size_t(c)] + alpha * rms[size_t(c)]));
  return S;
}

namespace {

// Scores by channel (cols × rows) so a group's columns are contiguous reads; the pruned mass of groups.
class GroupMass {
 public:
  GroupMass(const float* S, int64_t rows, int64_t cols, NMPattern nm) : rows_(rows), nm_(nm), St_(size_t(rows * cols)) {
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) St_[size_t(c * rows + r)] = S[r * cols + c];
  }
  // Σ over rows of the M − N lowest scores among channels ch[0..M).
  double operator()(const int32_t* ch) const {
    std::array<float, 64> v{};
    double sum = 0;
    for (int64_t r = 0; r < rows_; r++) {
      for (int k = 0; k < nm_.m; k++) v[size_t(k)] = St_[size_t(ch[k] * rows_ + r)];
      std::partial_sort(v.begin(), v.begin() + (nm_.m - nm_.n), v.begin() + nm_.m);
      for (int k = 0; k < nm_.m - nm_.n; k++) sum += v[size_t(k)];
    }
    return sum;
  }

 private:
  int64_t rows_;
  NMPattern nm_;
  std::vector<float> St_;
};

std::vector<int32_t> global_naive_shuffle(const float* S, int64_t rows, int64_t cols, NMPattern nm) {
  std::vector<double> imp(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t c = 0; c < cols; c++) imp[size_t(c)] += S[r * cols + c];
  std::vector<int32_t> order(static_cast<size_t>(cols));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return imp[size_t(a)] > imp[size_t(b)]; });
  const int64_t G = cols / nm.m;
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  for (int64_t k = 0; k < cols; k++) perm[size_t((k % G) * nm.m + k / G)] = order[size_t(k)];
  return perm;
}

// Greedy pairwise swaps between groups inside each block; each accepted swap lowers the pruned mass.
void local_block_shuffle(const GroupMass& mass, int64_t cols, NMPattern nm, const ShuffleOptions& o,
                         std::vector<int32_t>& perm) {
  const int64_t M = nm.m, G = cols / M;
  std::vector<double> gm(static_cast<size_t>(G));
  for (int64_t g = 0; g < G; g++) gm[size_t(g)] = mass(perm.data() + g * M);
  for (int64_t b0 = 0; b0 < cols; b0 += o.block) {
    const int64_t b1 = std::min(cols, b0 + o.block);
    for (int pass = 0; pass < o.passes; pass++) {
      bool changed = false;
      for (int64_t i = b0; i < b1; i++)
        for (int64_t j = (i / M + 1) * M; j < b1; j++) {
          const int64_t gi = i / M, gj = j / M;
          std::swap(perm[size_t(i)], perm[size_t(j)]);
          const double mi = mass(perm.data() + gi * M), mj = mass(perm.data() + gj * M);
          const double before = gm[size_t(gi)] + gm[size_t(gj)];
          if (mi + mj < before - 1e-9 * std::fabs(before)) {
            gm[size_t(gi)] = mi, gm[size_t(gj)] = mj, changed = true;
          } else {
            std::swap(perm[size_t(i)], perm[size_t(j)]);
          }
        }
      if (!changed) break;
    }
  }
}

}  // namespace

double nm_pruned_mass(const float* S, int64_t rows, int64_t cols, const std::vector<int32_t>& perm, NMPattern nm) {
  GroupMass mass(S, rows, cols, nm);
  double sum = 0;
  for (int64_t g = 0; g < cols / nm.m; g++) sum += mass(perm.data() + g * nm.m);
  return sum;
}

std::vector<int32_t> esparse_shuffle(const float* S, int64_t rows, int64_t cols, NMPattern nm,
                                     const ShuffleOptions& o) {
  check(nm.active() && nm.m <= 64 && cols % nm.m == 0, "esparse: {} columns cannot hold {}:{} groups", cols, nm.n, nm.m);
  check(o.block == 0 || o.block % nm.m == 0, "esparse: shuffle block {} is not a multiple of M = {}", o.block, nm.m);
  std::vector<int32_t> perm(static_cast<size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  GroupMass mass(S, rows, cols, nm);
  auto total = [&](const std::vector<int32_t>& p) {
    double s = 0;
    for (int64_t g = 0; g < cols / nm.m; g++) s += mass(p.data() + g * nm.m);
    return s;
  };
  if (o.global) {
    std::vector<int32_t> g = global_naive_shuffle(S, rows, cols, nm);
    if (total(g) < total(perm)) perm = std::move(g);
  }
  if (o.block > 0) local_block_shuffle(mass, cols, nm, o, perm);
  return perm;
}

namespace {

class EsparseModifier final : public PruneModifier {
 public:
  explicit EsparseModifier(const nlohmann::json& st) : PruneModifier(st, "esparse") {
    check(args_.spec.nm.active() && args_.spec.nm.m <= 64, "esparse: E-Sparse is N:M pruning: give \"nm\" (e.g. 2:4)");
    check(!args_.owl, "esparse: --owl does not apply to N:M");
    alpha_ = stage_real(st, "alpha", 1.0, 0.0, 1e6, "esparse");
    bins_ = int(stage_int(st, "bins", 128, 2, 1 << 16, "esparse"));
    shuffle_.global = st.value("shuffle", true);
    shuffle_.block = st.value("shuffle", true) ? int(stage_int(st, "block", 64, 0, 1 << 20, "esparse")) : 0;
    shuffle_.passes = int(stage_int(st, "passes", 2, 1, 100, "esparse"));
    check(shuffle_.block % args_.spec.nm.m == 0, "esparse: block {} is not a multiple of M = {}", shuffle_.block,
          args_.spec.nm.m);
  }
  StatsRequest stats_request() const override { return {false, true}; }

 protected:
  // Histograms of every input site over all calibration samples (ranges from the pipeline's max|x|).
  void begin_block(BlockContext& ctx) override {
    check(!ctx.inputs.empty(), "esparse: needs calibration data (--calib FILE)");
    std::array<ChannelHistograms, kInputSites> h;
    for (int s = 0; s < kInputSites; s++) h[size_t(s)] = ChannelHistograms(ctx.stats.site[size_t(s)].abs_max, bins_);
    std::vector<float> out;
    for (int s = 0; s < int(ctx.inputs.size()); s++) {
      out.resize(ctx.inputs[size_t(s)].size());
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k == LinearKind::K || k == LinearKind::V || k == LinearKind::Up) return;  // shared inputs
        h[size_t(kInputSite[size_t(k)])].add(X, n);
      });
    }
    for (int s = 0; s < kInputSites; s++) entropy_[size_t(s)] = h[size_t(s)].entropy();
  }

  WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    const LinearStats& st = ctx.stats.of(kind);
    std::vector<double> rms = st.l2_norm();
    for (double& v : rms) v /= std::sqrt(double(std::max<int64_t>(st.count, 1)));
    std::vector<float> S = esparse_scores(W.data(), rows, cols, entropy_[size_t(kInputSite[size_t(kind)])], rms, alpha_);
    std::vector<int32_t> perm(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), 0);
    if (shuffle_.global || shuffle_.block > 0) perm = esparse_shuffle(S.data(), rows, cols, spec.nm, shuffle_);
    std::vector<float> Wp = permute_columns(W.data(), rows, cols, perm), Sp = permute_columns(S.data(), rows, cols, perm);
    apply_mask(Wp.data(), select_mask(Sp.data(), rows, cols, spec).data(), rows * cols);
    WeightPtr inner = store_pruned(rows, cols, Wp.data(), store_for(spec), what);
    if (std::is_sorted(perm.begin(), perm.end())) return inner;
    return std::make_unique<PermutedInputMatrix>(std::move(inner), std::move(perm));
  }

 private:
  double alpha_ = 1.0;
  int bins_ = 128;
  ShuffleOptions shuffle_;
  std::array<std::vector<double>, kInputSites> entropy_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_esparse_modifier(const nlohmann::json& stage) {
  return std::make_unique<EsparseModifier>(stage);
}

}  // namespace lmp

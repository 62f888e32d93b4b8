#include "prune/gum.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "calib/targets.h"
#include "core/error.h"
#include "prune/structured_common.h"
#include "quant/quant_args.h"

namespace lmp {

std::vector<int> gum_removal_order(const std::vector<double>& gram, const std::vector<double>& down_col2, int64_t F,
                                   int64_t count) {
  check(int64_t(gram.size()) == F * F && int64_t(down_col2.size()) == F && count < F,
        "gum: Gram {} / norms {} for {} neurons, removing {}", gram.size(), down_col2.size(), F, count);
  auto cosine = [&](int64_t a, int64_t b) {
    const double d = std::sqrt(gram[size_t(a * F + a)] * gram[size_t(b * F + b)]);
    return d > 0 ? std::fabs(gram[size_t(a * F + b)]) / d : 0.0;
  };
  std::vector<char> kept(static_cast<size_t>(F), 1);
  std::vector<double> red(static_cast<size_t>(F));       // max |cos| to a kept neuron
  std::vector<int64_t> partner(static_cast<size_t>(F));  // which one
  auto refresh = [&](int64_t j) {
    red[size_t(j)] = 0, partner[size_t(j)] = -1;
    for (int64_t k = 0; k < F; k++)
      if (k != j && kept[size_t(k)] && cosine(j, k) > red[size_t(j)]) red[size_t(j)] = cosine(j, k), partner[size_t(j)] = k;
  };
  for (int64_t j = 0; j < F; j++) refresh(j);
  std::vector<int> order;
  for (int64_t step = 0; step < count; step++) {
    int64_t best = -1;
    double best_score = 0;
    for (int64_t j = 0; j < F; j++) {
      if (!kept[size_t(j)]) continue;
      const double score = gram[size_t(j * F + j)] * down_col2[size_t(j)] * (1.0 - std::min(red[size_t(j)], 1.0));
      if (best < 0 || score < best_score) best = j, best_score = score;
    }
    kept[size_t(best)] = 0;
    order.push_back(int(best));
    for (int64_t j = 0; j < F; j++)  // only neurons whose closest partner left change
      if (kept[size_t(j)] && partner[size_t(j)] == best) refresh(j);
  }
  return order;
}

namespace {

class GumModifier final : public BlockModifier {
 public:
  explicit GumModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    sparsity_ = stage_real(st, "sparsity", 0.25, 0.0, 1.0, "gum");
    check(sparsity_ > 0 && sparsity_ < 1, "gum: --sparsity {} is outside (0, 1)", sparsity_);
  }
  std::string name() const override { return "gum"; }
  StatsRequest stats_request() const override { return {false, false}; }

  void apply(BlockContext& ctx) override {
    if (!targets_.match(linear_name(ctx.layer, LinearKind::Down))) return;
    check(!ctx.inputs.empty(), "gum: needs calibration data (--calib FILE)");
    Block& b = ctx.model.blocks[size_t(ctx.layer)];
    const int64_t F = b.at(LinearKind::Down).in(), rows = b.at(LinearKind::Down).out();
    // G = AᵀA over all samples (each sample's activations in f32, summed in f64 in sample order).
    std::vector<double> G(size_t(F * F), 0.0);
    std::vector<float> Gs(size_t(F * F)), out;
    for (int s = 0; s < int(ctx.inputs.size()); s++) {
      out.resize(ctx.inputs[size_t(s)].size());
      ctx.run_block_hooked(s, out.data(), [&](LinearKind k, const float* X, int64_t n) {
        if (k != LinearKind::Down) return;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(F), int(F), int(n), 1.0f, X, int(F), X, int(F), 0.0f,
                    Gs.data(), int(F));
        for (size_t i = 0; i < G.size(); i++) G[i] += Gs[i];
      });
    }
    std::vector<float> Wd = dense_weight(b.at(LinearKind::Down));
    std::vector<double> col2(size_t(F), 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t j = 0; j < F; j++) col2[size_t(j)] += double(Wd[size_t(r * F + j)]) * Wd[size_t(r * F + j)];
    const int64_t count = std::min<int64_t>(int64_t(std::floor(sparsity_ * double(F) + 1e-9)), F - 1);
    std::vector<int> removed = gum_removal_order(G, col2, F, count);
    std::vector<char> drop(static_cast<size_t>(F), 0);
    for (int j : removed) drop[size_t(j)] = 1;
    std::vector<int> keep;
    for (int j = 0; j < F; j++)
      if (!drop[size_t(j)]) keep.push_back(j);
    for (LinearKind k : {LinearKind::Gate, LinearKind::Up}) {
      Linear& l = b.at(k);
      l = make_dense_linear(int64_t(keep.size()), l.in(), take_rows(dense_weight(l), l.in(), keep));
    }
    b.at(LinearKind::Down) = make_dense_linear(rows, int64_t(keep.size()), take_cols(Wd, rows, F, keep),
                                               b.at(LinearKind::Down).bias);
    sync_layer_widths(ctx.model);
    std::fprintf(stderr, "gum: layer %d MLP %lld → %zu neurons\n", ctx.layer, (long long)F, keep.size());
  }

 private:
  Targets targets_;
  double sparsity_ = 0.25;
};

}  // namespace

std::unique_ptr<BlockModifier> make_gum_modifier(const nlohmann::json& stage) {
  return std::make_unique<GumModifier>(stage);
}

}  // namespace lmp

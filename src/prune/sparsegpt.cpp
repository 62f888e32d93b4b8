#include "prune/sparsegpt.h"

#include "calib/obs_solver.h"
#include "core/error.h"
#include "kernels/qint.h"
#include "prune/prune_modifier.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

// The per-column SparseGPT rule on the shared OBS sweep.
class SparseGptStep final : public ObsStep {
 public:
  SparseGptStep(int64_t rows, int64_t cols, const SparseGptOptions& o) : o_(o), rows_(rows), cols_(cols) {
    if (o.quantize) {
      gs_ = o.grid.group_size(cols), ng_ = o.grid.ngroups(cols);
      codes_.assign(size_t(rows * cols), 0);
      params_.resize(size_t(rows * ng_));
    }
  }

  // Unstructured: the block's mask, per row, by w²/[U]²_jj (weights as they stand when the block begins).
  void begin_block(const ObsBlock& b) override {
    B_ = b.i2 - b.i1;
    mask_.assign(size_t(rows_ * B_), 0);
    score_.assign(size_t(rows_ * B_), 0.0f);
    if (o_.spec.nm.active()) return;
    fill_scores(b, 0, B_);
    if (o_.prune_total >= 0) {
      auto share = [](int64_t total, int64_t a, int64_t b, int64_t n) { return total * b / n - total * a / n; };
      if (o_.block_mask)
        return mask_lowest_count(score_.data(), rows_ * B_, share(o_.prune_total, b.i1, b.i2, cols_), mask_.data());
      for (int64_t r = 0; r < rows_; r++)
        mask_lowest_count(score_.data() + r * B_, B_, share(share(o_.prune_total, r, r + 1, rows_), b.i1, b.i2, cols_),
                          mask_.data() + r * B_);
      return;
    }
    mask_lowest_per_row(score_.data(), rows_, B_, 0, B_, o_.spec.sparsity, mask_.data());
  }

  void column(const ObsBlock& b, int64_t i, const float* w, float* q) override {
    const int64_t j = i - b.i1;
    const NMPattern nm = o_.spec.nm;
    if (nm.active() && j % nm.m == 0) {  // N:M: choose among the next M columns, current weights
      fill_scores(b, j, nm.m);
      mask_nm(score_.data(), rows_, B_, j, nm.m, nm, mask_.data());
    }
    for (int64_t r = 0; r < rows_; r++) q[r] = mask_[size_t(r * B_ + j)] ? 0.0f : w[r];
    if (o_.quantize) quantize_column(b, i, q);
  }

  std::vector<uint8_t> codes() { return std::move(codes_); }
  void params(std::vector<float>* scales, std::vector<uint8_t>* zeros) const {
    for (const GroupParams& p : params_) scales->push_back(p.scale), zeros->push_back(uint8_t(p.zero));
  }

 private:
  // score(r, j) = W1[r][j]² / [U]²_jj for block columns [j0, j0 + n).
  void fill_scores(const ObsBlock& b, int64_t j0, int64_t n) {
    for (int64_t j = j0; j < j0 + n; j++) {
      const float d = b.Ud[j], *col = b.W1t + j * rows_;
      for (int64_t r = 0; r < rows_; r++) score_[size_t(r * B_ + j)] = col[r] * col[r] / (d * d);
    }
  }

  // Joint quantization: group parameters at the group's first column from Wt as it stood when the block
  // began (columns [c, c + gs)); then q ← grid value of q (a pruned 0 stays exactly 0: 0 is on the grid).
  void quantize_column(const ObsBlock& b, int64_t c, float* q) {
    const int64_t g = c / gs_;
    if (c % gs_ == 0) {
      const int64_t n = std::min(gs_, cols_ - c);
      std::vector<float> row(static_cast<size_t>(n));
      for (int64_t r = 0; r < rows_; r++) {
        for (int64_t k = 0; k < n; k++) row[size_t(k)] = b.Wt[(c + k) * rows_ + r];
        params_[size_t(r * ng_ + g)] = find_params(row.data(), n, o_.grid);
      }
    }
    for (int64_t r = 0; r < rows_; r++) {
      const GroupParams p = params_[size_t(r * ng_ + g)];
      const int code = quantize_value(q[r], p, o_.grid.bits);
      codes_[size_t(r * cols_ + c)] = uint8_t(code);
      q[r] = dequant(code, p);
    }
  }

  const SparseGptOptions& o_;
  int64_t rows_, cols_, B_ = 0, gs_ = 0, ng_ = 0;
  std::vector<uint8_t> mask_;  // (rows, B) of the current block, 1 = pruned
  std::vector<float> score_;   // (rows, B)
  std::vector<uint8_t> codes_;
  std::vector<GroupParams> params_;
};

}  // namespace

SparseGptResult sparsegpt_prune(const float* W, int64_t rows, int64_t cols, const std::vector<double>& H,
                                const SparseGptOptions& o, const std::string& what) {
  check_sparsity_spec(o.spec, cols, what);
  check(o.prune_total < 0 || (!o.spec.nm.active() && o.prune_total < rows * cols), "{}: an exact prune count "
        "({}) needs unstructured pruning of fewer than all {} weights", what, o.prune_total, rows * cols);
  check(!o.spec.nm.active() || o.block % o.spec.nm.m == 0, "{}: lazy block {} is not a multiple of M = {}", what,
        o.block, o.spec.nm.m);
  SparseGptStep step(rows, cols, o);
  ObsOptions so;
  so.damp = o.damp;
  so.block = o.block;
  SparseGptResult res;
  res.W.assign(W, W + rows * cols);
  res.loss = obs_sweep(res.W.data(), rows, cols, H, step, so, what).loss;
  if (o.quantize) {
    res.codes = step.codes();
    step.params(&res.scales, &res.zeros);
  }
  return res;
}

WeightPtr sparsegpt_store(const SparseGptResult& r, int64_t rows, int64_t cols, const SparseGptOptions& o,
                          const StoreOptions& store, const std::string& what) {
  if (!o.quantize) return store_pruned(rows, cols, r.W.data(), store, what);
  const uint8_t* zeros = o.grid.sym ? nullptr : r.zeros.data();
  if (o.spec.nm.active()) {
    const NMPattern nm = o.spec.nm;
    return SparseNMQ4::from_codes(rows, cols, nm.n, nm.m, o.grid, r.codes.data(),
                                  nm_kept_columns(r.W.data(), rows, cols, nm.n, nm.m, what), r.scales.data(), zeros);
  }
  return QIntMatrix::from_codes(rows, cols, o.grid, r.codes.data(), r.scales.data(), zeros);
}

namespace {

class SparseGptModifier final : public PruneModifier {
 public:
  explicit SparseGptModifier(const nlohmann::json& st) : PruneModifier(st, "sparsegpt") {
    o_.damp = stage_real(st, "damp", 0.01, 0.0, 1.0, "sparsegpt");
    o_.block = int(stage_int(st, "block", 128, 1, 1 << 16, "sparsegpt"));
    o_.quantize = st.contains("bits") && !st["bits"].is_null();
    if (o_.quantize) o_.grid = grid_from_stage(st, "sparsegpt");
    const NMPattern nm = args_.spec.nm;
    check(!o_.quantize || !nm.active() || SparseNMQ4::supported(nm.n, nm.m, o_.grid),
          "sparsegpt: joint {}:{} + {}-bit group {} has no stored format (2:4 or 4:8, 4 bits, group 0 or a "
          "multiple of 32)", nm.n, nm.m, o_.grid.bits, o_.grid.group);
    check(!nm.active() || o_.block % nm.m == 0, "sparsegpt: block {} is not a multiple of M = {}", o_.block, nm.m);
  }
  StatsRequest stats_request() const override { return {true, args_.owl}; }

 protected:
  WeightPtr prune_linear(BlockContext& ctx, LinearKind kind, std::vector<float>& W, int64_t rows, int64_t cols,
                         const SparsitySpec& spec, const std::string& what) override {
    SparseGptOptions o = o_;
    o.spec = spec;
    SparseGptResult r = sparsegpt_prune(W.data(), rows, cols, ctx.stats.of(kind).hessian(), o, what);
    return sparsegpt_store(r, rows, cols, o, store_for(spec), what);
  }

 private:
  SparseGptOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_sparsegpt_modifier(const nlohmann::json& stage) {
  return std::make_unique<SparseGptModifier>(stage);
}

}  // namespace lmp

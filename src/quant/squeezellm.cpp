#include "quant/squeezellm.h"

#include <algorithm>
#include <cmath>

#include "calib/targets.h"
#include "core/error.h"
#include "kernels/sparse.h"
#include "quant/grid.h"
#include "quant/quant_args.h"

namespace lmp {

namespace {

int nearest(const float* c, int K, float w) {  // centroids sorted ascending
  int lo = int(std::upper_bound(c, c + K, w) - c);
  if (lo == 0) return 0;
  if (lo == K) return K - 1;
  return (w - c[lo - 1] <= c[lo] - w) ? lo - 1 : lo;
}

}  // namespace

void weighted_kmeans_1d(const float* w, const double* s, int64_t n, int K, int iters, float* c, uint8_t* codes,
                        std::vector<double>* history) {
  QuantGrid g;
  g.bits = 0;
  while ((1 << g.bits) < K) g.bits++;
  g.group = 0;
  GroupParams p = find_params(w, n, g);
  for (int k = 0; k < K; k++) c[k] = dequant(k, p);
  std::vector<double> sw(static_cast<size_t>(K)), ss(static_cast<size_t>(K));
  for (int it = 0; it <= iters; it++) {
    bool changed = it == 0;
    double obj = 0;
    for (int64_t i = 0; i < n; i++) {  // assignment (the weights do not move the 1-D nearest centroid)
      int k = nearest(c, K, w[i]);
      if (k != codes[i]) changed = true;
      codes[i] = uint8_t(k);
      double d = double(w[i]) - c[k];
      obj += s[i] * d * d;
    }
    if (history) history->push_back(obj);
    if (!changed || it == iters) break;
    std::fill(sw.begin(), sw.end(), 0.0);
    std::fill(ss.begin(), ss.end(), 0.0);
    for (int64_t i = 0; i < n; i++) {
      sw[codes[i]] += s[i] * w[i];
      ss[codes[i]] += s[i];
    }
    for (int k = 0; k < K; k++)
      if (ss[size_t(k)] > 0) c[k] = float(sw[size_t(k)] / ss[size_t(k)]);
    std::sort(c, c + K);  // weighted means of disjoint sorted intervals stay sorted; kept for safety
  }
}

std::unique_ptr<LutMatrix> squeezellm_quantize(const float* W, int64_t rows, int64_t cols, const std::vector<double>& s,
                                               const SqueezeOptions& o) {
  check(LutMatrix::supported(o.bits), "squeezellm: --bits {} is not supported (1..8)", o.bits);
  const int K = 1 << o.bits;
  // Dense-and-sparse split: the top sparse_frac of |w|·s over the matrix.
  std::vector<char> outlier(size_t(rows * cols), 0);
  const int64_t nout = int64_t(std::floor(o.sparse_frac * double(rows * cols)));
  if (nout > 0) {
    std::vector<std::pair<double, int64_t>> v(size_t(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) v[size_t(i)] = {std::fabs(W[i]) * s[size_t(i % cols)], i};
    std::nth_element(v.begin(), v.begin() + nout, v.end(), std::greater<>());
    for (int64_t i = 0; i < nout; i++) outlier[size_t(v[size_t(i)].second)] = 1;
  }
  std::vector<uint8_t> codes(size_t(rows * cols));
  std::vector<float> lut(size_t(rows * K)), side(nout > 0 ? size_t(rows * cols) : 0);
  std::vector<float> wr;
  std::vector<double> sr;
  std::vector<uint8_t> cr;
  for (int64_t r = 0; r < rows; r++) {
    wr.clear();
    sr.clear();
    for (int64_t c = 0; c < cols; c++)
      if (!outlier[size_t(r * cols + c)]) {
        wr.push_back(W[r * cols + c]);
        sr.push_back(s[size_t(c)]);
      }
    float* C = lut.data() + r * K;
    cr.assign(wr.size(), 0);
    if (wr.empty()) {
      std::fill(C, C + K, 0.0f);
    } else {
      weighted_kmeans_1d(wr.data(), sr.data(), int64_t(wr.size()), K, o.iters, C, cr.data());
    }
    for (int k = 0; k < K; k++) C[k] = f16_to_f32(f32_to_f16(C[k]));  // as stored
    for (int64_t c = 0; c < cols; c++) {
      float w = W[r * cols + c];
      int k = nearest(C, K, w);
      codes[size_t(r * cols + c)] = uint8_t(k);
      if (outlier[size_t(r * cols + c)]) {
        float res = w - C[k];
        side[size_t(r * cols + c)] = res != 0 ? res : 0x1p-24f;  // keep the position even when exact
      }
    }
  }
  WeightPtr sp;
  if (nout > 0) sp = SparseBitmap::from_dense(rows, cols, side.data(), SparseValues::F16);
  return std::make_unique<LutMatrix>(rows, cols, o.bits, codes.data(), lut.data(), std::move(sp));
}

namespace {

class SqueezeModifier final : public BlockModifier {
 public:
  explicit SqueezeModifier(const nlohmann::json& st) : targets_(Targets::from_stage(st)) {
    o_.bits = int(stage_int(st, "bits", 3, 1, 8, "squeezellm"));
    o_.sparse_frac = stage_real(st, "sparse_frac", 0.0, 0.0, 0.5, "squeezellm");
    o_.iters = int(stage_int(st, "iters", 50, 0, 10000, "squeezellm"));
  }
  std::string name() const override { return "squeezellm"; }
  StatsRequest stats_request() const override { return {true, false}; }
  void apply(BlockContext& ctx) override {
    rewrite_targets(ctx.model.blocks[size_t(ctx.layer)], ctx.layer, targets_,
                    [&](LinearKind k, const Linear& lin, const std::vector<float>& W) -> WeightPtr {
                      auto H = ctx.stats.of(k).hessian();
                      std::vector<double> s(static_cast<size_t>(lin.in()));  // sensitivity: diag(H)
                      for (int64_t c = 0; c < lin.in(); c++) s[size_t(c)] = H[size_t(c * lin.in() + c)];
                      return squeezellm_quantize(W.data(), lin.out(), lin.in(), s, o_);
                    });
  }

 private:
  Targets targets_;
  SqueezeOptions o_;
};

}  // namespace

std::unique_ptr<BlockModifier> make_squeezellm_modifier(const nlohmann::json& stage) {
  return std::make_unique<SqueezeModifier>(stage);
}

}  // namespace lmp

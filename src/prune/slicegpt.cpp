#include "prune/slicegpt.h"

#include <cblas.h>
#include <cmath>
#include <lapacke.h>

#include "core/error.h"
#include "core/progress.h"
#include "model/forward.h"
#include "prune/structured_common.h"

namespace lmp {

int sliced_width(int hidden, double sparsity) {
  check(sparsity >= 0 && sparsity < 1, "SliceGPT: sparsity {} must be in [0, 1) (0 = rotate only)", sparsity);
  const int w = int(std::floor((1 - sparsity) * hidden + 1e-9));
  check(w >= 1, "SliceGPT: sparsity {} leaves width {} of hidden size {} (must stay ≥ 1)", sparsity, w, hidden);
  return w;
}

namespace {

using Mat = std::vector<float>;  // row-major

// R (m, n) = op(A) (m, k) · op(B) (k, n), op = transpose when the flag is set.
Mat mm(bool ta, bool tb, const Mat& A, const Mat& B, int m, int n, int k) {
  Mat R(size_t(m) * n);
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, A.data(),
              ta ? m : k, B.data(), tb ? k : n, 0.0f, R.data(), n);
  return R;
}

// W (rows, cols) · diag(g): absorbs an RMSNorm scale into the Linear that reads the norm's output.
Mat scale_cols(Mat W, int64_t rows, const std::vector<float>& g) {
  const size_t cols = g.size();
  for (int64_t r = 0; r < rows; r++)
    for (size_t j = 0; j < cols; j++) W[size_t(r) * cols + j] *= g[j];
  return W;
}

// Qᵀ·b for an output-side bias (empty stays empty).
std::vector<float> rotate_bias(const Mat& Q, const std::vector<float>& b, int C, int Cp) {
  if (b.empty()) return {};
  return mm(true, false, Q, b, Cp, 1, C);
}

// Σ zzᵀ over the rows of many (n, C) matrices, in double.
struct Gram {
  int C;
  std::vector<double> M;
  explicit Gram(int c) : C(c), M(size_t(c) * c, 0.0) {}
  void add(const Mat& Z, int64_t n) {
    std::vector<double> Zd(Z.begin(), Z.begin() + n * C);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, C, int(n), 1.0, Zd.data(), C, 1.0, M.data(), C);
  }
  // The Cp leading eigenvectors as the columns of Q (C, Cp); kept = their share of the trace.
  Mat top(int Cp, double* kept) const {
    std::vector<double> A = M, w(static_cast<size_t>(C));
    int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', C, A.data(), C, w.data());
    check(info == 0, "SliceGPT: eigendecomposition failed (LAPACKE_dsyevd info {})", info);
    Mat Q(size_t(C) * Cp);
    double all = 0, top = 0;
    for (int j = 0; j < C; j++) all += std::max(w[size_t(j)], 0.0);
    for (int k = 0; k < Cp; k++) {  // eigenvalues ascend: column C−1−k is the k-th largest
      top += std::max(w[size_t(C - 1 - k)], 0.0);
      for (int i = 0; i < C; i++) Q[size_t(i) * Cp + k] = float(A[size_t(i) * C + (C - 1 - k)]);
    }
    *kept = all > 0 ? top / all : 1.0;
    return Q;
  }
};

Linear dense(int64_t out, int64_t in, Mat W, std::vector<float> b = {}) {
  return make_dense_linear(out, in, std::move(W), std::move(b));
}

}  // namespace

SliceGptReport slicegpt(Model& m, const Samples& samples, double sparsity, bool progress) {
  m.require_dense_embed("slicegpt");
  ModelConfig& c = m.cfg;
  check(!c.residual_shortcuts, "SliceGPT: the model is sliced already (it has residual shortcuts)");
  check(!samples.empty(), "SliceGPT: no calibration samples");
  const int C = c.hidden, Cp = sliced_width(C, sparsity), V = c.vocab, L = int(samples[0].size());
  check(L <= c.max_pos, "SliceGPT: --seqlen {} exceeds max_position_embeddings {}", L, c.max_pos);
  const size_t N = samples.size();
  SliceGptReport rep;
  rep.hidden_before = C, rep.hidden_after = Cp;
  double kept = 0;

  // The head with the final norm absorbed, taken before the embedding changes (a tied head borrows it).
  Mat head = scale_cols(dense_weight(m.lm_head), V, m.final_norm);

  // Embedding: PCA of the embedded calibration tokens; E ← E·Q₀.
  std::vector<Mat> xs(N);  // the residual stream of each sample at the current site, (L, Cp) after rotation
  {
    Forward fw(m);
    Gram g(C);
    for (size_t s = 0; s < N; s++) {
      xs[s].resize(size_t(L) * C);
      fw.embed(samples[s].data(), L, xs[s].data());
      g.add(xs[s], L);
    }
    Mat Q = g.top(Cp, &kept);
    rep.kept_energy.push_back(kept);
    m.lm_head = Linear();  // re-made (untied) at the end
    m.embed = mm(false, false, m.embed, Q, V, Cp, C);
    for (auto& x : xs) x = mm(false, false, x, Q, L, Cp, C);
    c.tie_embeddings = false;
    c.hidden = Cp;
    // RMSNorm over C' entries with weight √(C/C') and eps·C/C' equals RMSNorm over the original width C.
    c.rms_eps = float(double(c.rms_eps) * C / Cp);
    m.final_norm.assign(size_t(Cp), float(std::sqrt(double(C) / Cp)));
    Mat Qin = std::move(Q);

    Progress prog("SliceGPT rotate+slice", c.n_layers, "block");
    for (int l = 0; l < c.n_layers; l++) {
      Block& b = m.blocks[size_t(l)];
      const int64_t Hh = b.at(LinearKind::Q).out(), KVh = b.at(LinearKind::K).out(), F = b.at(LinearKind::Gate).out();
      const Mat Wo = dense_weight(b.at(LinearKind::O)), Wd = dense_weight(b.at(LinearKind::Down));
      const std::vector<float> bo = b.at(LinearKind::O).bias, bd = b.at(LinearKind::Down).bias;
      const Mat Wg = scale_cols(dense_weight(b.at(LinearKind::Gate)), F, b.ffn_norm);
      const Mat Wu = scale_cols(dense_weight(b.at(LinearKind::Up)), F, b.ffn_norm);
      // Attention input side: W ← W·diag(g)·Q_in.
      for (LinearKind k : {LinearKind::Q, LinearKind::K, LinearKind::V}) {
        Linear& lin = b.at(k);
        const int64_t rows = k == LinearKind::Q ? Hh : KVh;
        lin = dense(rows, Cp, mm(false, false, scale_cols(dense_weight(lin), rows, b.attn_norm), Qin, int(rows), Cp, C),
                    lin.bias);
      }
      b.attn_norm.assign(size_t(Cp), float(std::sqrt(double(C) / Cp)));
      b.ffn_norm = b.attn_norm;
      // Placeholders of the right shapes so the block runs; only q/k/v matter for pass 1.
      b.at(LinearKind::O) = dense(Cp, Hh, mm(true, false, Qin, Wo, Cp, int(Hh), C));
      b.at(LinearKind::Gate) = dense(F, Cp, mm(false, false, Wg, Qin, int(F), Cp, C));
      b.at(LinearKind::Up) = dense(F, Cp, mm(false, false, Wu, Qin, int(F), Cp, C));
      b.at(LinearKind::Down) = dense(Cp, F, mm(true, false, Qin, Wd, Cp, int(F), C));
      b.attn_shortcut = Linear(), b.mlp_shortcut = Linear();

      // Pass 1: z = Q_in·x + W_o·att (+ b_o), the stream after attention in the original basis.
      std::vector<Mat> Z(N);
      auto site_stream = [&](const Mat& x, const Mat& Q, const float* X, const Mat& W, const std::vector<float>& bias,
                             int64_t width) {
        Mat z = mm(false, true, x, Q, L, C, Cp);
        Mat in(X, X + size_t(L) * width);
        Mat y = mm(false, true, in, W, L, C, int(width));
        for (size_t i = 0; i < z.size(); i++) z[i] += y[i] + (bias.empty() ? 0.0f : bias[i % size_t(C)]);
        return z;
      };
      run_block_samples(m, l, xs, L, [&](size_t s, LinearKind k, const float* X, int64_t) {
        if (k == LinearKind::O) Z[s] = site_stream(xs[s], Qin, X, Wo, bo, Hh);
      });
      Gram ga(C);
      for (const auto& z : Z) ga.add(z, L);
      Mat Qm = ga.top(Cp, &kept);
      rep.kept_energy.push_back(kept);
      b.at(LinearKind::O) = dense(Cp, Hh, mm(true, false, Qm, Wo, Cp, int(Hh), C), rotate_bias(Qm, bo, C, Cp));
      b.attn_shortcut = dense(Cp, Cp, mm(true, false, Qm, Qin, Cp, Cp, C));
      b.at(LinearKind::Gate) = dense(F, Cp, mm(false, false, Wg, Qm, int(F), Cp, C));
      b.at(LinearKind::Up) = dense(F, Cp, mm(false, false, Wu, Qm, int(F), Cp, C));
      b.at(LinearKind::Down) = dense(Cp, F, mm(true, false, Qm, Wd, Cp, int(F), C));
      std::vector<Mat> xm(N);
      for (size_t s = 0; s < N; s++) xm[s] = mm(false, false, Z[s], Qm, L, Cp, C);
      Z.assign(N, Mat());

      // Pass 2: z = Q_m·x_m + W_down·act (+ b_down), the stream after the MLP in the original basis.
      run_block_samples(m, l, xs, L, [&](size_t s, LinearKind k, const float* X, int64_t) {
        if (k == LinearKind::Down) Z[s] = site_stream(xm[s], Qm, X, Wd, bd, F);
      });
      Gram gm(C);
      for (const auto& z : Z) gm.add(z, L);
      Mat Qn = gm.top(Cp, &kept);
      rep.kept_energy.push_back(kept);
      b.at(LinearKind::Down) = dense(Cp, F, mm(true, false, Qn, Wd, Cp, int(F), C), rotate_bias(Qn, bd, C, Cp));
      b.mlp_shortcut = dense(Cp, Cp, mm(true, false, Qn, Qm, Cp, Cp, C));
      for (size_t s = 0; s < N; s++) xs[s] = mm(false, false, Z[s], Qn, L, Cp, C);
      Qin = std::move(Qn);
      if (progress) prog.update(l + 1);
    }
    if (progress) prog.finish();
    m.lm_head = dense(V, Cp, mm(false, false, head, Qin, V, Cp, C));
  }
  c.residual_shortcuts = true;
  return rep;
}

}  // namespace lmp

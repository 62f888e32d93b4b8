#include "prune/depth.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/progress.h"
#include "prune/structured_common.h"

namespace lmp {

int depth_blocks_to_remove(int n_layers, double sparsity) {
  check_sparsity(sparsity, "depth pruning");
  int k = int(std::floor(sparsity * n_layers + 1e-9));
  check(k >= 1, "depth pruning: sparsity {} of {} blocks removes none (need ≥ {:.3f})", sparsity, n_layers,
        1.0 / n_layers);
  check(k < n_layers, "depth pruning: sparsity {} would remove all {} blocks", sparsity, n_layers);
  return k;
}

namespace {

// Moves block i (and its per-layer config entries) out of the model; put_back undoes it.
struct TakenBlock {
  Block block;
  int heads = 0, kv = 0, ffn = 0;
};

TakenBlock take_block(Model& m, int i) {
  ModelConfig& c = m.cfg;
  TakenBlock t{std::move(m.blocks[size_t(i)]), c.heads(i), c.kv_heads(i), c.ffn(i)};
  m.blocks.erase(m.blocks.begin() + i);
  if (!c.layer_heads.empty()) {
    c.layer_heads.erase(c.layer_heads.begin() + i);
    c.layer_kv_heads.erase(c.layer_kv_heads.begin() + i);
    c.layer_intermediate.erase(c.layer_intermediate.begin() + i);
  }
  c.n_layers--;
  return t;
}

void put_back(Model& m, int i, TakenBlock&& t) {
  ModelConfig& c = m.cfg;
  m.blocks.insert(m.blocks.begin() + i, std::move(t.block));
  if (!c.layer_heads.empty()) {
    c.layer_heads.insert(c.layer_heads.begin() + i, t.heads);
    c.layer_kv_heads.insert(c.layer_kv_heads.begin() + i, t.kv);
    c.layer_intermediate.insert(c.layer_intermediate.begin() + i, t.ffn);
  }
  c.n_layers++;
}

}  // namespace

void remove_blocks(Model& m, std::vector<int> blocks) {
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  for (int b : blocks)
    check(b >= 0 && b < m.cfg.n_layers, "depth pruning: block {} outside 0..{}", b, m.cfg.n_layers - 1);
  check(int(blocks.size()) < m.cfg.n_layers, "depth pruning: removing {} of {} blocks leaves none", blocks.size(),
        m.cfg.n_layers);
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) take_block(m, *it);
}

DepthReport depth_prune(Model& m, const Samples& samples, double sparsity, bool progress) {
  const int L = m.cfg.n_layers, k = depth_blocks_to_remove(L, sparsity);
  DepthReport r;
  r.base_nll = calibration_nll(m, samples);
  Progress prog("rank blocks (ppl without each)", L, "block");
  for (int i = 0; i < L; i++) {
    TakenBlock t = take_block(m, i);
    try {
      r.nll_without.push_back(calibration_nll(m, samples));
    } catch (...) {
      put_back(m, i, std::move(t));
      throw;
    }
    put_back(m, i, std::move(t));
    if (progress) prog.update(i + 1);
  }
  if (progress) prog.finish();
  std::vector<int> order(static_cast<size_t>(L));
  std::iota(order.begin(), order.end(), 0);
  // Least important first: lowest NLL without the block (ties: the later block, which tends to matter less).
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return r.nll_without[size_t(a)] < r.nll_without[size_t(b)] ||
           (r.nll_without[size_t(a)] == r.nll_without[size_t(b)] && a > b);
  });
  r.removed.assign(order.begin(), order.begin() + k);
  std::sort(r.removed.begin(), r.removed.end());
  remove_blocks(m, r.removed);
  return r;
}

}  // namespace lmp

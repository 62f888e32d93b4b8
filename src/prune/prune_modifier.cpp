#include "prune/prune_modifier.h"

#include <cstdio>
#include <map>

#include "core/error.h"
#include "prune/owl.h"
#include "quant/quant_args.h"

namespace lmp {

PruneArgs prune_args_from_stage(const nlohmann::json& st, const char* mod) {
  PruneArgs a;
  if (st.contains("nm") && !st["nm"].is_null()) {
    check(st["nm"].is_string(), "{}: 'nm' must be a string like \"2:4\", got {}", mod, st["nm"].dump());
    a.spec.nm = parse_nm(st["nm"].get<std::string>(), fmt::format("{}: nm", mod));
    a.spec.sparsity = 1.0 - double(a.spec.nm.n) / a.spec.nm.m;
  } else {
    check(!st.contains("sparsity") || st["sparsity"].is_number(), "{}: 'sparsity' must be a number, got {}", mod,
          st.value("sparsity", nlohmann::json()).dump());
    a.spec.sparsity = st.value("sparsity", 0.5);
    check(a.spec.sparsity > 0 && a.spec.sparsity < 1, "{}: --sparsity {} is outside (0, 1)", mod, a.spec.sparsity);
  }
  a.owl = st.value("owl", false);
  a.owl_lambda = stage_real(st, "owl_lambda", 0.08, 0.0, 0.5, mod);
  a.owl_m = stage_real(st, "owl_m", 5.0, 1.0, 1000.0, mod);
  check(!(a.owl && a.spec.nm.active()), "{}: --owl sets a sparsity per layer; it cannot be combined with --nm", mod);
  check(!a.owl || (a.spec.sparsity - a.owl_lambda > 0 && a.spec.sparsity + a.owl_lambda < 1),
        "{}: sparsity {} ± owl_lambda {} leaves (0, 1)", mod, a.spec.sparsity, a.owl_lambda);
  std::string v = st.value("values", "f32");
  check(v == "f32" || v == "f16", "{}: values '{}' must be f32 or f16", mod, v);
  a.store.values = v == "f32" ? SparseValues::F32 : SparseValues::F16;
  a.store.sparse_min = stage_real(st, "sparse_min", 0.3, 0.0, 1.0, mod);
  a.store.nm = a.spec.nm;
  return a;
}

PruneModifier::PruneModifier(const nlohmann::json& st, const char* name)
    : args_(prune_args_from_stage(st, name)), targets_(Targets::from_stage(st)), name_(name) {}

StoreOptions PruneModifier::store_for(const SparsitySpec& spec) const {
  StoreOptions o = args_.store;
  o.nm = spec.nm;
  return o;
}

void PruneModifier::apply(BlockContext& ctx) {
  if (args_.owl && owl_sparsity_.empty()) {
    check(!ctx.inputs.empty(), "{}: --owl needs calibration data (--calib FILE)", name_);
    owl_sparsity_ = owl_sparsities(owl_outlier_ratios(ctx.model, ctx.inputs, ctx.seqlen, args_.owl_m, targets_),
                                   args_.spec.sparsity, args_.owl_lambda);
    std::string line;
    for (double s : owl_sparsity_) line += fmt::format(" {:.3f}", s);
    std::fprintf(stderr, "%s: OWL layer sparsities:%s\n", name_.c_str(), line.c_str());
  }
  SparsitySpec spec = args_.spec;
  if (args_.owl) spec.sparsity = owl_sparsity_[size_t(ctx.layer)];
  begin_block(ctx);
  Block& b = ctx.model.blocks[size_t(ctx.layer)];
  std::map<std::string, int> formats;
  for (int k = 0; k < kLinearsPerBlock; k++) {
    const std::string what = linear_name(ctx.layer, LinearKind(k));
    if (!targets_.match(what)) continue;
    Linear& lin = b.lin[size_t(k)];
    check_sparsity_spec(spec, lin.in(), fmt::format("{}: {}", name_, what));
    std::vector<float> W = lin.w->dense();
    lin.w = prune_linear(ctx, LinearKind(k), W, lin.out(), lin.in(), spec, what);
    formats[lin.w->format()]++;
  }
  // Say which stored form each matrix got (dense with zeros below sparse_min).
  std::string line;
  for (const auto& [f, n] : formats) line += fmt::format(" {}×{}", n, f);
  std::fprintf(stderr, "%s: layer %d sparsity %.3f%s →%s\n", name_.c_str(), ctx.layer, spec.sparsity,
               spec.nm.active() ? fmt::format(" ({}:{})", spec.nm.n, spec.nm.m).c_str() : "", line.c_str());
}

}  // namespace lmp

// lmpress train lora|qlora|peqa|qat|distill — fine-tuning for compression (src/train/):
//   lora     LoRA adapters on frozen weights (--qlora: 4-bit frozen base; --loftq N: LoftQ init), merged on export
//   peqa     only the per-group scales of a group-wise quantized copy learn (PEQA)
//   qat      fake-quantized weights with STE + learned step sizes (LSQ); with a teacher (or --loss ≠ ce: the
//            full-precision model itself) it is knowledge-distilled QAT; --data-free N: LLM-QAT's
//            self-generated data; --asym-clip + --loss cakld: BitDistiller
//   distill  a student (the same model depth-pruned by --drop-layers, quantized by --bits, or --student DIR)
//            learns from --teacher with fkl|rkl|jsd|cakld (+ --ted W hidden alignment, --onpolicy P for GKD),
//            or black-box from teacher responses to --prompts FILE with cross-entropy
//   full     full fine-tuning with cross-entropy
//   pretrain a fresh model (--config-from DIR: its tokenizer/architecture, --hidden/--layers/... overriding,
//            --init normal|scaled|small) or one grown from a smaller trained model (--grow-from DIR --grow
//            depth:Kx|width:H), trained from there (train/init_grow.h)
// Any mode: --precision bf16|f16 trains with 16-bit compute, f32 master weights and dynamic loss scaling
// (--loss-scale S, --loss-scale-window K, --loss-scale-static; train/mixed_precision.h).
// Progress on stderr; results on stdout (--json: one object). A diverged run exits 2 naming the last
// good checkpoint.
#include <cstdio>
#include <sstream>

#include "calib/dist.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "eval/perplexity.h"
#include "train/init_grow.h"
#include "train/trainer.h"

namespace lmp {

using namespace lmp::train;

static std::vector<int> parse_int_list(const std::string& s, const char* opt) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      v.push_back(std::stoi(item));
    } catch (...) {
      fail("--{} '{}': want comma-separated integers", opt, s);
    }
  }
  return v;
}

int cmd_train(int argc, char** argv) {
  check(argc >= 3, "usage: lmpress train lora|qlora|peqa|qat|distill|full|pretrain --model DIR --data FILE ... -o OUT");
  const std::string mode = argv[2];
  check(mode == "lora" || mode == "qlora" || mode == "peqa" || mode == "qat" || mode == "distill" || mode == "full" ||
            mode == "pretrain",
        "train mode '{}' is not known (choose lora, qlora, peqa, qat, distill, full, pretrain)", mode);
  Args a(argc, argv, 3, {"json", "sym", "qlora", "asym-clip", "recompute", "quiet", "loss-scale-static"});
  const std::string out = a.required("output");
  const bool json = a.flag("json");
  // models
  std::string model_dir = a.str("model", ""), teacher_dir = a.str("teacher", ""), student_dir = a.str("student", "");
  if (mode == "distill") {
    if (student_dir.empty()) student_dir = model_dir;
    if (teacher_dir.empty()) teacher_dir = model_dir;
  } else {
    student_dir = model_dir;
  }
  // pretrain: where the fresh / grown model comes from (init_grow.h)
  FreshSpec fresh;
  std::string grow_spec;
  if (mode == "pretrain") {
    const std::string grow_from = a.str("grow-from", "");
    student_dir = grow_from.empty() ? a.str("config-from", model_dir) : grow_from;
    check(!student_dir.empty(), "train pretrain: missing option --config-from DIR (tokenizer and architecture) or "
          "--grow-from DIR");
    if (!grow_from.empty()) grow_spec = a.required("grow");
    fresh = {int(a.integer("hidden", 0)), int(a.integer("layers", 0)), int(a.integer("heads", 0)),
             int(a.integer("kv-heads", 0)), int(a.integer("ffn", 0)), int(a.integer("head-dim", 0)),
             parse_init(a.str("init", "scaled")), 0};
  }
  check(!student_dir.empty(), "missing option --model");
  // setup
  TrainSetup s;
  s.mode = mode == "lora" || mode == "qlora" ? Mode::Lora : mode == "peqa" ? Mode::Peqa : mode == "qat" ? Mode::Qat : Mode::Full;
  s.targets = a.str("targets", ".*");
  s.rank = int(a.integer("rank", 8));
  s.alpha = float(a.real("alpha", 2.0 * s.rank));
  s.qlora = mode == "qlora" || a.flag("qlora");
  s.loftq_iters = int(a.integer("loftq", 0));
  const int bits = int(a.integer("bits", mode == "distill" ? 0 : 4));
  s.grid.bits = bits;
  s.grid.group = int(a.integer("group", 32));
  s.grid.sym = a.flag("sym");
  s.base_grid = {4, false, int(a.integer("base-group", 64))};
  s.asym_clip = a.flag("asym-clip");
  s.recompute = a.flag("recompute");
  s.seed = uint64_t(a.integer("seed", 0));
  fresh.seed = s.seed;
  s.precision = parse_precision(a.str("precision", "f32"));
  if (auto d = a.opt("drop-layers")) s.drop_layers = parse_int_list(*d, "drop-layers");
  if (mode == "distill" && bits > 0) s.mode = Mode::Qat;  // quantized student
  if (s.mode == Mode::Lora) {
    check(s.rank > 0, "--rank must be positive (got {})", s.rank);
    s.train_embed = s.train_norms = false;
  }
  if (s.mode == Mode::Peqa) s.train_embed = s.train_norms = false;
  if (s.mode == Mode::Qat || s.mode == Mode::Peqa)
    check(QIntMatrix::supported(s.grid), "--bits {} --group {}: no stored format (bits 2,3,4,8; group 0,32,64,128,256)",
          s.grid.bits, s.grid.group);
  // training options
  TrainOptions o;
  o.steps = int(a.integer("steps", 100));
  o.batch = int(a.integer("batch", 8));
  o.seqlen = int(a.integer("seqlen", 256));
  o.seed = s.seed;
  o.optim.kind = a.str("optim", "adamw");
  o.optim.lr = a.real("lr", s.mode == Mode::Lora ? 1e-3 : 5e-4);
  if (o.optim.kind == "lion") o.optim.beta2 = 0.99;
  o.optim.weight_decay = a.real("wd", 0.0);
  o.optim.clip = a.real("clip", 1.0);
  o.optim.warmup = int(a.integer("warmup", std::min(20, o.steps / 10)));
  o.optim.total = o.steps;
  const std::string default_loss = mode == "distill" ? "fkl" : "ce";
  o.loss = parse_loss(a.str("loss", default_loss));
  o.beta = a.real("beta", 0.5);
  o.estimate_gamma = !a.opt("beta").has_value();
  o.ce_weight = a.real("ce-weight", 0.0);
  o.ted_weight = a.real("ted", 0.0);
  o.onpolicy = a.real("onpolicy", 0.0);
  o.ckpt = a.str("ckpt", out + ".ckpt.safetensors");
  o.ckpt_every = int(a.integer("ckpt-every", 50));
  o.resume = a.str("resume", "");
  o.log_every = int(a.integer("log-every", 10));
  o.quiet = a.flag("quiet");
  const float scale_lr = float(a.real("scale-lr-mult", 0.1));
  if (a.opt("loss-scale")) o.scaler.init = a.real("loss-scale", 0);
  o.loss_scaling = s.precision != Precision::F32 || a.opt("loss-scale").has_value();
  o.scaler.window = int(a.integer("loss-scale-window", 200));
  o.scaler.dynamic = !a.flag("loss-scale-static");
  // data
  const std::string data = a.str("data", ""), prompts = a.str("prompts", "");
  const TextFormat fmt_ = parse_text_format(a.str("format", "docs"));
  const long data_free = a.integer("data-free", 0);
  const int max_new = int(a.integer("max-new-tokens", 128));
  const std::string eval = a.str("eval", "");
  const TextFormat eval_fmt = parse_text_format(a.str("eval-format", "docs"));
  PplOptions po;
  po.ctx = int(a.integer("ctx", 512));
  po.max_windows = int(a.integer("eval-windows", 0));
  po.progress = false;
  a.finish();
  check(dist::size() == 1, "train: not data-parallel; run it without mpirun (compress/quantize/prune/factorize and eval ppl are)");
  check(!data.empty() || data_free > 0 || !prompts.empty(), "missing option --data (or --data-free N / --prompts FILE)");

  std::unique_ptr<Model> src;
  if (mode != "pretrain") {
    src = load_model(student_dir);
  } else {
    auto base = load_model(student_dir);
    src = grow_spec.empty() ? fresh_model(*base, fresh) : grow(*base, grow_spec, s.seed);
  }
  std::unique_ptr<Model> tmodel;
  const bool kd = o.loss != LossKind::CE || o.ted_weight > 0 || data_free > 0 || !prompts.empty() || mode == "distill";
  if (kd) {
    std::string tdir = teacher_dir.empty() ? model_dir : teacher_dir;  // QAT: the full-precision model itself
    tmodel = load_model(tdir);
    check_same_tokenizer(*tmodel, *src);
  }
  TokenStream stream;
  if (!prompts.empty()) {
    stream = prompt_stream(*tmodel, prompts, max_new);
    o.loss = LossKind::CE;  // black-box: only the teacher's text is seen
  } else if (data_free > 0) {
    if (!o.quiet) std::fprintf(stderr, "train: teacher generating %ld tokens from BOS (data-free)\n", data_free);
    stream = sample_stream(*tmodel, data_free, o.seqlen + 1, 1.0f, s.seed);
  } else {
    stream = stream_from_file(src->tokenizer(), data, fmt_);
  }
  if (o.loss == LossKind::CE) o.ted_weight = 0;

  std::unique_ptr<TrainModel<float>> teacher;
  if (tmodel && o.loss != LossKind::CE) {
    TrainSetup ts;
    ts.freeze_all = true;
    ts.recompute = true;
    teacher = std::make_unique<TrainModel<float>>(*tmodel, ts);
  }
  TrainModel<float> st(*src, s);
  for (auto& p : st.params)
    if (p.positive) p.lr_mult = scale_lr;  // quantizer scales: smaller steps (they are ~10× smaller than weights)
  if (!o.quiet)
    std::fprintf(stderr, "train %s: %lld trainable of %lld parameters, %zu tokens, %d steps x %d x %d\n", mode.c_str(),
                 (long long)st.n_trainable(), (long long)src->n_params(), stream.ids.size(), o.steps, o.batch,
                 o.seqlen);

  nlohmann::json res = {{"mode", mode}, {"loss", loss_name(o.loss)}, {"steps", o.steps}, {"batch", o.batch},
                        {"seqlen", o.seqlen}, {"lr", o.optim.lr}, {"trainable_params", st.n_trainable()}};
  std::vector<int> eval_ids;
  if (!eval.empty()) {
    eval_ids = tokenize_file(src->tokenizer(), eval, eval_fmt);
    auto before = st.to_model(*src);
    res["ppl_before"] = perplexity(*before, eval_ids, po).ppl;
    if (!o.quiet) std::fprintf(stderr, "train: ppl before %.4f\n", res["ppl_before"].get<double>());
  }
  TrainResult r = train::train(st, teacher.get(), *src, stream, o);
  const QuantGrid* requant = s.qlora || s.loftq_iters > 0 ? &s.base_grid : nullptr;
  auto m = st.to_model(*src, requant);
  nlohmann::json stage = {{"modifier", "train"}, {"mode", mode}, {"steps", o.steps}, {"loss", loss_name(o.loss)},
                          {"lr", o.optim.lr}, {"seed", s.seed}};
  if (s.mode == Mode::Qat || s.mode == Mode::Peqa) stage["bits"] = s.grid.bits, stage["group"] = s.grid.group;
  if (s.mode == Mode::Lora) stage["rank"] = s.rank;
  if (mode == "pretrain") stage[grow_spec.empty() ? "init" : "grow"] = grow_spec.empty() ? init_name(fresh.init) : grow_spec;
  if (s.precision != Precision::F32) stage["precision"] = precision_name(s.precision);
  m->recipe = {{"base", src->recipe}, {"train", stage}};
  save_model(*m, out);
  res.update({{"first_loss", r.first_loss}, {"last_loss", r.last_loss}, {"seconds", r.seconds},
              {"tokens_per_s", r.tokens_per_s}, {"bits_per_weight", m->linear_bits_per_weight()}, {"out", out},
              {"checkpoint", o.ckpt}, {"optim", o.optim.kind}, {"optimizer_state_bytes", r.optimizer_state_bytes},
              {"precision", precision_name(s.precision)}, {"params", m->n_params()}});
  if (o.loss_scaling) res.update({{"loss_scale", r.loss_scale}, {"skipped_steps", r.skipped_steps}});
  if (!eval.empty()) res["ppl_after"] = perplexity(*m, eval_ids, po).ppl;
  if (json) {
    print_json(res);
  } else {
    std::printf("train %s: %d steps in %.1f s (%.0f tok/s), loss %.4f -> %.4f, %.3f bits/weight -> %s\n", mode.c_str(),
                o.steps, r.seconds, r.tokens_per_s, r.first_loss, r.last_loss, m->linear_bits_per_weight(), out.c_str());
    if (!eval.empty())
      std::printf("ppl %.4f -> %.4f\n", res["ppl_before"].get<double>(), res["ppl_after"].get<double>());
  }
  return 0;
}

}  // namespace lmp

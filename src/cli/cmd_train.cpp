// lmpress train lora|qlora|peqa|qat|distill — fine-tuning for compression (src/train/):
//   lora     LoRA adapters on frozen weights (--qlora: 4-bit frozen base; --loftq N: LoftQ init), merged on export
//   peqa     only the per-group scales of a group-wise quantized copy learn (PEQA)
//   qat      fake-quantized weights with STE + learned step sizes (LSQ); with a teacher (or --loss ≠ ce: the
//            full-precision model itself) it is knowledge-distilled QAT; --data-free N: LLM-QAT's
//            self-generated data; --asym-clip + --loss cakld: BitDistiller
//   l4q      L4Q: LoRA whose merge is fake-quantized with learned scales; exports the quantized merge directly
//   loraprune  LoRAPrune: LoRA fine-tuning that masks KV groups / MLP channels by LoRA-gradient importance up to
//            --sparsity P during the first --prune-frac of the steps, then recovers; stored structurally smaller
//   distill  a student (the same model depth-pruned by --drop-layers, quantized by --bits, or --student DIR)
//            learns from --teacher with fkl|rkl|jsd|cakld (+ --ted W hidden alignment, --onpolicy P for GKD),
//            or black-box (src/distill/): --kd-recipe NAME writes the data from the teacher (responses to
//            --prompts FILE and/or --task arith problems) and the student is fine-tuned on it with cross-entropy;
//            --kd-data FILE trains on a saved set, --kd-out FILE saves it, --task-eval N reports task accuracy
//            (zero-shot; --task-eval-shots K adds K-shot accuracy by problem kind)
// The same options form a recipe stage {"modifier": "train", "mode": "qat", "bits": 3, ...} (train_stage below).
//            --init truncate-first|
//            truncate-alternate|random --student-layers K: TF-LLMD's layer-truncated (or random) student
// qat|distill --contrastive W [--tau T]: + QuantGPT's token-level contrastive distillation on the last hidden states
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
#include "distill/cot2_common.h"
#include "distill/inst_common.h"
#include "distill/kd_recipe.h"
#include "eval/perplexity.h"
#include "prune/loraprune.h"
#include "train/tfllmd.h"
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

static const std::set<std::string> kTrainFlags = {"json", "sym", "qlora", "asym-clip", "recompute", "quiet",
                                                   "loss-scale-static", "task-eval-after-only"};

namespace {
struct TrainRun {
  std::unique_ptr<Model> model;
  nlohmann::json result;
};
}  // namespace

// The whole of `lmpress train MODE` on options a; the student is `given` (a recipe stage's model) or loaded
// from --model/--student. out names the output (checkpoints go beside it; "" = no checkpoint by default).
static TrainRun train_run(const std::string& mode, const Args& a, const Model* given, const std::string& out) {
  check(mode == "lora" || mode == "qlora" || mode == "peqa" || mode == "qat" || mode == "distill" || mode == "l4q" ||
            mode == "loraprune" || mode == "full" || mode == "pretrain",
        "train mode '{}' is not known (choose lora, qlora, peqa, qat, distill, l4q, loraprune, full, pretrain)", mode);
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
  check(given || !student_dir.empty(), "missing option --model");
  // setup
  TrainSetup s;
  const bool lora_like = mode == "lora" || mode == "qlora" || mode == "l4q" || mode == "loraprune";
  s.mode = lora_like ? Mode::Lora : mode == "peqa" ? Mode::Peqa : mode == "qat" ? Mode::Qat : Mode::Full;
  s.targets = a.str("targets", ".*");
  s.rank = int(a.integer("rank", 8));
  s.alpha = float(a.real("alpha", 2.0 * s.rank));
  s.qlora = mode == "qlora" || a.flag("qlora");
  s.loftq_iters = int(a.integer("loftq", 0));
  const int bits = int(a.integer("bits", mode == "distill" ? 0 : 4));
  s.grid.bits = bits;
  s.grid.group = int(a.integer("group", 32));
  s.grid.sym = a.flag("sym");
  s.base_grid = {int(a.integer("base-bits", 4)), false, int(a.integer("base-group", 64))};
  s.asym_clip = a.flag("asym-clip");
  s.recompute = a.flag("recompute");
  s.seed = uint64_t(a.integer("seed", 0));
  fresh.seed = s.seed;
  s.precision = parse_precision(a.str("precision", "f32"));
  if (auto d = a.opt("drop-layers")) s.drop_layers = parse_int_list(*d, "drop-layers");
  s.l4q = mode == "l4q";
  // TF-LLMD: a layer-truncated (or same-shape random) student
  const std::string init = mode == "pretrain" ? "" : a.str("init", "");  // pretrain's --init is its init scheme
  if (!init.empty()) {
    check(mode == "distill" && !a.opt("drop-layers") && !a.opt("bits"),
          "--init is for train distill of a float student (instead of --drop-layers)");
    const auto si = parse_student_init(init);
    const ModelConfig teacher_cfg = given ? given->cfg : load_model(student_dir)->cfg;
    s.drop_layers = truncation_drop_layers(teacher_cfg.n_layers, int(a.integer("student-layers", teacher_cfg.n_layers / 2)), si);
  }
  LoraPruneOptions lp;
  double prune_frac = 0.5;
  if (mode == "loraprune") {
    lp.sparsity = a.real("sparsity", 0.2);
    prune_frac = a.real("prune-frac", 0.5);
    lp.every = int(a.integer("prune-every", 5));
    lp.ema = a.real("prune-ema", 0.9);
  }
  if (mode == "distill" && bits > 0) s.mode = Mode::Qat;  // quantized student
  if (s.mode == Mode::Lora) {
    check(s.rank > 0, "--rank must be positive (got {})", s.rank);
    s.train_embed = s.train_norms = false;
  }
  if (s.mode == Mode::Peqa) s.train_embed = s.train_norms = false;
  if (s.l4q || s.mode == Mode::Qat || s.mode == Mode::Peqa)
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
  o.contrastive_weight = a.real("contrastive", 0.0);  // QuantGPT: with logit KD (forward KL unless --loss)
  o.contrastive_tau = a.real("tau", 0.1);
  const std::string default_loss = mode == "distill" || o.contrastive_weight > 0 ? "fkl" : "ce";
  o.loss = parse_loss(a.str("loss", default_loss));
  o.beta = a.real("beta", 0.5);
  o.estimate_gamma = !a.opt("beta").has_value();
  o.ce_weight = a.real("ce-weight", 0.0);
  o.ted_weight = a.real("ted", 0.0);
  o.onpolicy = a.real("onpolicy", 0.0);
  check(o.contrastive_weight == 0 || o.loss != LossKind::CE, "--contrastive goes with a distillation loss "
        "(--loss fkl|rkl|jsd|cakld), not --loss ce");
  lp.prune_steps = std::max(1, int(std::lround(prune_frac * o.steps)));
  o.ckpt = a.str("ckpt", out.empty() ? "" : out + ".ckpt.safetensors");
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
  // black-box KD (src/distill/)
  const std::string kd_data = a.str("kd-data", ""), kd_out = a.str("kd-out", ""), task = a.str("task", "");
  std::string kd_recipe = a.str("kd-recipe", "");
  const auto kd_opt = distill::KdOptions::parse(a.str("kd-set", ""));
  const int task_n = int(a.integer("task-n", 500)), task_eval = int(a.integer("task-eval", 0));
  const int shots = int(a.integer("task-eval-shots", 0));  // also few-shot accuracy by kind (distill/inst_common.h)
  check(shots >= 0 && shots <= 4, "--task-eval-shots {}: want 0..4 demonstrations", shots);
  check(task.empty() || task == "arith", "--task '{}': the only task is 'arith' (distill/kd_tasks.h)", task);
  if (kd_recipe.empty() && kd_data.empty() && (!prompts.empty() || !task.empty())) kd_recipe = "responses";
  const TextFormat fmt_ = parse_text_format(a.str("format", "docs"));
  const long data_free = a.integer("data-free", 0);
  const int max_new = int(a.integer("max-new-tokens", 128));
  const std::string eval = a.str("eval", "");
  const TextFormat eval_fmt = parse_text_format(a.str("eval-format", "docs"));
  PplOptions po;
  po.ctx = int(a.integer("ctx", 512));
  po.max_windows = int(a.integer("eval-windows", 0));
  po.progress = false;
  check(dist::size() == 1, "train: not data-parallel; run it without mpirun (compress/quantize/prune/factorize and eval ppl are)");
  const bool blackbox = !kd_recipe.empty() || !kd_data.empty();
  check(!data.empty() || data_free > 0 || blackbox,
        "missing option --data (or --data-free N / --prompts FILE / --kd-recipe NAME / --kd-data FILE)");

  std::unique_ptr<Model> loaded;
  if (mode == "pretrain") {  // a fresh or grown model (a recipe stage's model is not its start)
    auto base = load_model(student_dir);
    loaded = grow_spec.empty() ? fresh_model(*base, fresh) : grow(*base, grow_spec, s.seed);
  } else if (!given) {
    loaded = load_model(student_dir);
  }
  const Model* src = loaded ? loaded.get() : given;
  std::unique_ptr<Model> tmodel;
  const bool kd = o.loss != LossKind::CE || o.ted_weight > 0 || data_free > 0 || !kd_recipe.empty() ||
                  mode == "distill";
  if (kd) {
    std::string tdir = teacher_dir.empty() ? model_dir : teacher_dir;  // QAT: the full-precision model itself
    check(!tdir.empty(), "missing option --teacher");
    tmodel = load_model(tdir);
    check_same_tokenizer(*tmodel, *src);
  }
  if (blackbox) o.loss = LossKind::CE;  // black-box: only the teacher's text is seen
  TokenStream stream;
  const std::vector<distill::WordProblem> held_out =
      task_eval > 0 ? distill::word_problems(task_eval, s.seed + 1000003) : std::vector<distill::WordProblem>{};
  distill::KdResult kd_res;
  std::unique_ptr<Model> kd_student;
  if (!kd_recipe.empty()) {
    distill::KdContext ctx;
    ctx.teacher = tmodel.get();
    // The recipes see (score, exam) and fine-tune the student as it will be trained: depth-pruned once here, so
    // the fine-tunes between rounds do not drop --drop-layers again from an already pruned model.
    TrainSetup once = s;
    once.drop_layers.clear();
    if (!s.drop_layers.empty()) kd_student = TrainModel<float>(*src, s).to_model(*src);
    ctx.student = kd_student ? kd_student.get() : src;
    if (!prompts.empty()) ctx.prompts = distill::read_lines(prompts);
    if (!task.empty()) ctx.problems = distill::word_problems(task_n, s.seed);
    ctx.opt = kd_opt;
    ctx.seed = s.seed;
    ctx.max_new = max_new;
    ctx.quiet = o.quiet;
    ctx.finetune = [&, once](const Model& student, const distill::KdSet& set) {
      TrainModel<float> t(student, &student == src ? s : once);
      TrainOptions oq = o;
      oq.ckpt.clear();
      oq.resume.clear();
      train::train(t, nullptr, student, distill::kd_stream(student.tokenizer(), set), oq);
      return t.to_model(student);
    };
    kd_res = distill::run_kd_recipe(kd_recipe, ctx);
    if (!kd_out.empty()) distill::save_kd_set(kd_res.data, kd_out);
    stream = distill::kd_stream(src->tokenizer(), kd_res.data);
  } else if (!kd_data.empty()) {
    stream = distill::kd_stream(src->tokenizer(), distill::load_kd_set(kd_data));
  } else if (data_free > 0) {
    if (!o.quiet) std::fprintf(stderr, "train: teacher generating %ld tokens from BOS (data-free)\n", data_free);
    stream = sample_stream(*tmodel, data_free, o.seqlen + 1, 1.0f, s.seed);
  } else {
    stream = stream_from_file(src->tokenizer(), data, fmt_);
  }
  if (o.loss == LossKind::CE) o.ted_weight = 0, o.contrastive_weight = 0;

  std::unique_ptr<TrainModel<float>> teacher;
  if (tmodel && o.loss != LossKind::CE) {
    TrainSetup ts;
    ts.freeze_all = true;
    ts.recompute = true;
    teacher = std::make_unique<TrainModel<float>>(*tmodel, ts);
  }
  TrainModel<float> st(*src, s);
  if (init == "random") random_reinit(st, s.seed);
  std::unique_ptr<LoraPruner> pruner;
  if (mode == "loraprune") {
    check(o.resume.empty(), "--resume: a loraprune checkpoint holds the adapters but not the pruning masks; rerun it");
    lp.verbose = !o.quiet;
    pruner = std::make_unique<LoraPruner>(st, lp);
    o.after_backward = [&](int step) { pruner->after_backward(step); };
    o.after_step = [&](int step) { pruner->after_step(step); };
  }
  for (auto& p : st.params)
    if (p.positive) p.lr_mult = scale_lr;  // quantizer scales: smaller steps (they are ~10× smaller than weights)
  if (!o.quiet)
    std::fprintf(stderr, "train %s: %lld trainable of %lld parameters, %zu tokens, %d steps x %d x %d\n", mode.c_str(),
                 (long long)st.n_trainable(), (long long)src->n_params(), stream.ids.size(), o.steps, o.batch,
                 o.seqlen);

  nlohmann::json res = {{"mode", mode}, {"loss", loss_name(o.loss)}, {"steps", o.steps}, {"batch", o.batch},
                        {"seqlen", o.seqlen}, {"lr", o.optim.lr}, {"trainable_params", st.n_trainable()}};
  std::vector<int> eval_ids;
  std::unique_ptr<Model> before = !eval.empty() || !held_out.empty() ? st.to_model(*src) : nullptr;  // the student
  if (!eval.empty()) {
    eval_ids = tokenize_file(src->tokenizer(), eval, eval_fmt);
    res["ppl_before"] = perplexity(*before, eval_ids, po).ppl;
    if (!o.quiet) std::fprintf(stderr, "train: ppl before %.4f\n", res["ppl_before"].get<double>());
  }
  // --task-eval-after-only: skip the student-before and teacher accuracies (they are the same for every row of a table)
  const bool baselines = !a.flag("task-eval-after-only");
  if (baselines && !held_out.empty()) res["task_accuracy_before"] = distill::task_accuracy(*before, held_out);
  if (baselines && tmodel && !held_out.empty()) res["task_accuracy_teacher"] = distill::task_accuracy(*tmodel, held_out);
  const auto fewshot = [&](const Model& mm) {
    const auto f = distill::few_shot_accuracy(mm, held_out, distill::word_problems(300, s.seed + 2000003), shots,
                                              s.seed);
    return nlohmann::json{{"shots", shots}, {"overall", f.overall}, {"add", f.by_kind[0]},
                          {"subtract", f.by_kind[1]}, {"two-step", f.by_kind[2]}};
  };
  if (baselines && shots > 0 && !held_out.empty()) res["task_fewshot_before"] = fewshot(*before);
  if (baselines && shots > 0 && tmodel && !held_out.empty()) res["task_fewshot_teacher"] = fewshot(*tmodel);
  if (!kd_recipe.empty()) res["kd"] = {{"recipe", kd_recipe}, {"examples", kd_res.data.examples.size()},
                                       {"stats", kd_res.data.stats}};
  const QuantGrid* requant = s.qlora || s.loftq_iters > 0 ? &s.base_grid : nullptr;
  TrainResult r;
  std::unique_ptr<Model> m;
  if (kd_res.student) {  // the recipe trained the student itself (between its rounds)
    m = std::move(kd_res.student);
  } else {
    r = train::train(st, teacher.get(), *src, stream, o);
    m = pruner ? pruner->finish(*src) : st.to_model(*src, requant);
  }
  nlohmann::json stage = {{"modifier", "train"}, {"mode", mode}, {"steps", o.steps}, {"loss", loss_name(o.loss)},
                          {"lr", o.optim.lr}, {"seed", s.seed}};
  if (s.l4q || s.mode == Mode::Qat || s.mode == Mode::Peqa) stage["bits"] = s.grid.bits, stage["group"] = s.grid.group;
  if (s.mode == Mode::Lora) stage["rank"] = s.rank;
  if (!kd_recipe.empty()) stage["kd_recipe"] = kd_recipe;
  if (o.contrastive_weight > 0) stage["contrastive"] = o.contrastive_weight, stage["tau"] = o.contrastive_tau;
  if (pruner) stage["sparsity"] = lp.sparsity, res["params"] = m->n_params();
  if (!init.empty()) stage["init"] = init, stage["student_layers"] = st.n_layers();
  if (mode == "pretrain") stage[grow_spec.empty() ? "init" : "grow"] = grow_spec.empty() ? init_name(fresh.init) : grow_spec;
  if (s.precision != Precision::F32) stage["precision"] = precision_name(s.precision);
  m->recipe = {{"base", src->recipe}, {"train", stage}};
  res.update({{"first_loss", r.first_loss}, {"last_loss", r.last_loss}, {"seconds", r.seconds},
              {"tokens_per_s", r.tokens_per_s}, {"bits_per_weight", m->linear_bits_per_weight()}, {"out", out},
              {"checkpoint", o.ckpt}, {"optim", o.optim.kind}, {"optimizer_state_bytes", r.optimizer_state_bytes},
              {"precision", precision_name(s.precision)}, {"params", m->n_params()}});
  if (o.loss_scaling) res.update({{"loss_scale", r.loss_scale}, {"skipped_steps", r.skipped_steps}});
  if (!eval.empty()) res["ppl_after"] = perplexity(*m, eval_ids, po).ppl;
  if (!held_out.empty()) res["task_accuracy_after"] = distill::task_accuracy(*m, held_out);
  if (!kd_recipe.empty()) res.update(distill::recipe_task_metrics(kd_recipe, *m, held_out, "_after"));
  if (shots > 0 && !held_out.empty()) res["task_fewshot_after"] = fewshot(*m);
  return {std::move(m), res};
}

int cmd_train(int argc, char** argv) {
  check(argc >= 3, "usage: lmpress train lora|qlora|peqa|qat|distill|full|pretrain|l4q|loraprune --model DIR --data FILE ... -o OUT");
  const std::string mode = argv[2];
  Args a(argc, argv, 3, kTrainFlags);
  const std::string out = a.required("output");
  const bool json = a.flag("json");
  TrainRun run = train_run(mode, a, nullptr, out);
  a.finish();
  save_model(*run.model, out);
  const nlohmann::json& res = run.result;
  const TrainResult r{0, res["first_loss"], res["last_loss"], res["seconds"], res["tokens_per_s"], {}};
  if (json) {
    print_json(res);
  } else {
    std::printf("train %s: %d steps in %.1f s (%.0f tok/s), loss %.4f -> %.4f, %.3f bits/weight -> %s\n", mode.c_str(),
                res["steps"].get<int>(), r.seconds, r.tokens_per_s, r.first_loss, r.last_loss,
                run.model->linear_bits_per_weight(), out.c_str());
    if (res.contains("ppl_after"))
      std::printf("ppl %.4f -> %.4f\n", res["ppl_before"].get<double>(), res["ppl_after"].get<double>());
    if (res.contains("task_accuracy_after"))
      std::printf("task accuracy %.3f -> %.3f (teacher %.3f)\n", res.value("task_accuracy_before", -1.0),
                  res["task_accuracy_after"].get<double>(), res.value("task_accuracy_teacher", 0.0));
  }
  return 0;
}

// A recipe stage {"modifier": "train", "mode": M, key: value...}: the keys are `lmpress train M` options
// (true → a bare flag, false/null → left out), run on the recipe's current model.
std::unique_ptr<Model> train_stage(const Model& m, const nlohmann::json& stage) {
  check(stage.contains("mode") && stage["mode"].is_string(), "recipe: a 'train' stage needs a string 'mode' "
        "(lora, qlora, peqa, qat, distill)");
  std::vector<std::string> words = {"lmpress", "train", stage["mode"].get<std::string>()};
  for (auto it = stage.begin(); it != stage.end(); ++it) {
    if (it.key() == "modifier" || it.key() == "mode") continue;
    const auto& v = it.value();
    if (v.is_boolean()) {
      check(kTrainFlags.count(it.key()), "recipe: train setting '{}' takes a value, not true/false", it.key());
      if (v.get<bool>()) words.push_back("--" + it.key());
    } else if (!v.is_null()) {
      words.push_back("--" + it.key());
      words.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    }
  }
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  Args a(int(argv.size()), argv.data(), 3, kTrainFlags);
  TrainRun run = train_run(words[2], a, &m, "");
  a.finish();
  return std::move(run.model);
}

}  // namespace lmp

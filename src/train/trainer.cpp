#include "train/trainer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "io/safetensors.h"
#include "model/generate.h"

namespace lmp::train {

// ---------------------------------------------------------------------------------------------------
// Data

TokenStream stream_from_file(const Tokenizer& tok, const std::string& path, TextFormat fmt) {
  TokenStream s;
  s.ids = tokenize_file(tok, path, fmt);
  return s;
}

TokenStream sample_stream(const Model& m, long n_tokens, int max_len, float temperature, uint64_t seed) {
  TokenStream s;
  SamplingOptions so;
  so.temperature = temperature;
  for (uint64_t k = 0; long(s.ids.size()) < n_tokens; k++) {
    so.seed = seed * 1000003 + k;
    GenerateResult r = generate(m, {}, max_len - 1, so);
    s.ids.push_back(m.cfg.bos_id);
    for (int id : r.ids)
      if (id != m.cfg.eos_id && id != m.cfg.bos_id) s.ids.push_back(id);
  }
  return s;
}

void check_same_tokenizer(const Model& teacher, const Model& student) {
  const Tokenizer& a = teacher.tokenizer();
  const Tokenizer& b = student.tokenizer();
  bool same = a.vocab_size() == b.vocab_size() && teacher.cfg.vocab == student.cfg.vocab && a.bos_id() == b.bos_id() &&
              a.eos_id() == b.eos_id();
  for (const char* probe : {"Once upon a time, there was a little girl.", "The quick brown fox 1234", " \n\tÀ€"})
    same = same && a.encode(probe, true) == b.encode(probe, true);
  check(same, "teacher and student tokenizers differ ({} vs {}): distillation compares logits token by token, so "
        "both must use the same tokenizer", teacher.dir, student.dir);
}

// ---------------------------------------------------------------------------------------------------
// Checkpoints

void save_checkpoint(const std::string& path, const TrainModel<float>& m, const Optimizer<float>& opt, int step,
                     double loss) {
  SafeTensorsWriter w;
  for (const auto& p : m.params)
    if (p.trainable) w.add_f32("param." + p.name, p.shape, p.w.data());
  opt.save(w, m.params);
  w.set_metadata("step", std::to_string(step));
  w.set_metadata("loss", fmt::format("{:.6g}", loss));
  w.set_metadata("format", "lmpress-train");
  w.write(path);  // atomic: the previous checkpoint stays until this one is complete
}

int load_checkpoint(const std::string& path, TrainModel<float>& m, Optimizer<float>& opt) {
  SafeTensorsFile f(path);
  check(f.metadata().count("step") && f.metadata().count("format") && f.metadata().at("format") == "lmpress-train",
        "{}: not an lmpress training checkpoint (metadata format/step missing)", path);
  for (auto& p : m.params) {
    if (!p.trainable) continue;
    const TensorView* t = f.find("param." + p.name);
    check(t && size_t(t->numel()) == p.size(), "{}: checkpoint lacks param.{} ({} values): was it written by another "
          "training setup (mode, rank, targets, bits)?", path, p.name, p.size());
    std::vector<float> v = t->to_f32();
    std::copy(v.begin(), v.end(), p.w.begin());
  }
  opt.load(f, m.params);
  return std::stoi(f.metadata().at("step"));
}

// ---------------------------------------------------------------------------------------------------
// The loop

namespace {

// B windows of T+1 tokens at random offsets: inputs ids[off..off+T), targets ids[off+1..off+T] (−1 where
// the stream marks a position unscored or weighs it 0), and the targets' loss weights (empty when the stream
// has none).
void make_batch(const TokenStream& s, int B, int T, std::mt19937_64& rng, std::vector<int>& in,
                std::vector<int>& tgt, std::vector<float>& wt) {
  const size_t span = s.ids.size() - size_t(T);
  in.resize(size_t(B) * T);
  tgt.resize(size_t(B) * T);
  wt.assign(s.weight.empty() ? 0 : size_t(B) * T, 0.0f);
  for (int b = 0; b < B; b++) {
    const size_t off = size_t(rng() % span);
    for (int t = 0; t < T; t++) {
      const size_t i = size_t(b) * T + t, p = off + t + 1;
      in[i] = s.ids[off + t];
      const bool scored = (s.scored.empty() || s.scored[p]) && (s.weight.empty() || s.weight[p] > 0);
      tgt[i] = scored ? s.ids[p] : -1;
      if (!s.weight.empty()) wt[i] = s.weight[p];
    }
  }
}

std::string mmss(double s) {
  long v = long(s + 0.5);
  return fmt::format("{}:{:02d}", v / 60, v % 60);
}

}  // namespace

TrainResult train(TrainModel<float>& st, TrainModel<float>* teacher, const Model& student_src, const TokenStream& data,
                  const TrainOptions& o) {
  const int B = o.batch, T = o.seqlen, N = B * T, V = st.cfg.vocab;
  check(B > 0 && T > 1, "--batch must be > 0 and --seqlen > 1 (got {} and {})", B, T);
  check(o.steps > 0, "--steps must be positive (got {})", o.steps);
  check(data.ids.size() > size_t(T) + 1, "training data has {} tokens, fewer than one window of --seqlen {} + 1",
        data.ids.size(), T);
  check(o.loss == LossKind::CE || teacher, "--loss {} needs a teacher (--teacher DIR)", loss_name(o.loss));
  check(data.weight.empty() || o.loss == LossKind::CE, "weighted (black-box KD) data trains with cross-entropy only");
  check(o.ted_weight == 0 || teacher, "TED alignment needs a teacher");
  // TED: one learned projection P_l (Ct, Cs) per student block, onto teacher block round((l+1)·Lt/Ls) − 1.
  std::vector<int> ted_p, ted_t;
  if (o.ted_weight > 0) {
    const int Ls = st.n_layers(), Lt = teacher->n_layers(), Cs = st.cfg.hidden, Ct = teacher->cfg.hidden;
    for (int l = 0; l < Ls; l++) {
      std::vector<float> P(size_t(Ct) * Cs, 0.0f);
      for (int i = 0; i < std::min(Cs, Ct); i++) P[size_t(i) * Cs + i] = 1;
      ted_p.push_back(st.add_param(fmt::format("ted.proj.{}", l), {Ct, Cs}, P, true, false));
      ted_t.push_back(int(std::lround(double(l + 1) * Lt / Ls)) - 1);
    }
  }
  Optimizer<float> opt(o.optim, st.params);
  LossScaler scaler(o.scaler);
  int start = 0;
  if (!o.resume.empty()) start = load_checkpoint(o.resume, st, opt);
  check(start < o.steps, "{}: checkpoint is at step {}, nothing left to do for --steps {}", o.resume, start, o.steps);

  std::vector<int> in, tgt;
  std::vector<float> wt;
  std::vector<float> dlogits(size_t(N) * V), dl2;
  double gamma = o.beta;
  bool gamma_known = !(o.loss == LossKind::CAKLD && o.estimate_gamma);
  TrainResult res;
  const double t0 = now_seconds();
  int last_good = o.resume.empty() ? -1 : start;
  for (int step = start; step < o.steps; step++) {
    std::mt19937_64 rng(o.seed * 0x9E3779B97F4A7C15ull + uint64_t(step));
    const TokenStream* src = &data;
    TokenStream onpol;
    if (o.onpolicy > 0 && std::uniform_real_distribution<double>(0, 1)(rng) < o.onpolicy) {
      auto sm = st.to_model(student_src);
      onpol = sample_stream(*sm, long(B) * (T + 1) * 2, T + 1, 1.0f, o.seed + uint64_t(step));
      src = &onpol;
    }
    make_batch(*src, B, T, rng, in, tgt, wt);
    st.zero_grad();
    st.forward(in.data(), B, T);
    double loss;
    std::vector<std::vector<float>> dh;
    std::vector<const float*> dhp;
    if (teacher) {
      teacher->forward(in.data(), B, T);
      if (!gamma_known) {  // BitDistiller's γ: the teacher's mean confidence, from the first batch
        gamma = teacher_confidence(teacher->logits().data(), tgt.data(), N, V);
        gamma_known = true;
        if (!o.quiet) std::fprintf(stderr, "train: CAKLD gamma (teacher confidence) = %.4f\n", gamma);
      }
      const int* mask = src->scored.empty() ? nullptr : tgt.data();
      loss = kd_loss(o.loss, dlogits.data(), st.logits().data(), teacher->logits().data(), mask, N, V, gamma);
      if (o.ce_weight > 0) {
        dl2.resize(dlogits.size());
        loss += o.ce_weight * cross_entropy(dl2.data(), st.logits().data(), tgt.data(), N, V);
        for (size_t i = 0; i < dl2.size(); i++) dlogits[i] += float(o.ce_weight) * dl2[i];
      }
      if (o.ted_weight > 0) {
        const int Ls = st.n_layers(), Cs = st.cfg.hidden, Ct = teacher->cfg.hidden;
        dh.assign(size_t(Ls) + 1, {});
        dhp.assign(size_t(Ls) + 1, nullptr);
        for (int l = 0; l < Ls; l++) {
          auto& P = st.params[size_t(ted_p[size_t(l)])];
          dh[size_t(l) + 1].assign(size_t(N) * Cs, 0.0f);
          std::vector<float> dP(P.size(), 0.0f);
          double a = hidden_align_loss(dh[size_t(l) + 1].data(), dP.data(), st.hidden(l),
                                       teacher->hidden(ted_t[size_t(l)]), P.w.data(), N, Cs, Ct);
          loss += o.ted_weight * a / Ls;
          const float k = float(o.ted_weight / Ls);
          for (auto& v : dh[size_t(l) + 1]) v *= k;
          for (size_t i = 0; i < dP.size(); i++) P.g[i] += k * dP[i];
          dhp[size_t(l) + 1] = dh[size_t(l) + 1].data();
        }
      }
      if (o.contrastive_weight > 0) {  // QuantGPT: student vs teacher states after the last block
        const int Ls = st.n_layers(), C = st.cfg.hidden;
        check(teacher->cfg.hidden == C, "--contrastive needs teacher and student of equal hidden size ({} vs {})",
              teacher->cfg.hidden, C);
        if (dh.empty()) dh.assign(size_t(Ls) + 1, {}), dhp.assign(size_t(Ls) + 1, nullptr);
        std::vector<float>& d = dh[size_t(Ls)];
        d.resize(size_t(N) * C, 0.0f);
        std::vector<float> dc(size_t(N) * C, 0.0f);
        loss += o.contrastive_weight * token_contrastive_loss(dc.data(), st.hidden(Ls - 1),
                                                              teacher->hidden(teacher->n_layers() - 1), N, C,
                                                              o.contrastive_tau);
        for (size_t i = 0; i < d.size(); i++) d[i] += float(o.contrastive_weight) * dc[i];
        dhp[size_t(Ls)] = d.data();
      }
    } else {
      loss = cross_entropy(dlogits.data(), st.logits().data(), tgt.data(), N, V, wt.empty() ? nullptr : wt.data());
    }
    auto diverged = [&](const char* what, double v) {
      fail("training diverged: {} is {} at step {} (lr {:.3g}); stopped. {}", what, v, step + 1,
           lr_at(o.optim, step),
           o.ckpt.empty() ? std::string("no checkpoint was being written")
           : last_good >= 0 ? fmt::format("last good checkpoint: {} (step {}); lower --lr and --resume from it", o.ckpt,
                                          last_good)
                            : fmt::format("no good checkpoint yet at {}", o.ckpt));
    };
    if (!std::isfinite(loss)) diverged("the loss", loss);
    if (o.loss_scaling) {  // backward of S·loss: every gradient so far (TED's projections) and the seeds × S
      for (auto& p : st.params)
        if (p.trainable) scaler.scale_grad(p.g.data(), p.g.size());
      scaler.scale_grad(dlogits.data(), dlogits.size());
      for (auto& d : dh) scaler.scale_grad(d.data(), d.size());
    }
    st.backward(dlogits.data(), dhp.empty() ? nullptr : &dhp);
    if (o.after_backward) o.after_backward(step);
    const bool finite = !o.loss_scaling || scaler.unscale(st.params);
    if (o.loss_scaling) scaler.update(finite);
    double gnorm = 0;
    if (finite) {  // a skipped step leaves the master weights and optimizer state untouched
      gnorm = opt.clip_grad_norm(st.params);
      if (!std::isfinite(gnorm)) diverged("the gradient norm", gnorm);
      opt.step(st.params, lr_at(o.optim, step));
      st.clamp_positive();
      if (o.after_step) o.after_step(step);
    }
    if (res.losses.empty()) res.first_loss = loss;
    res.losses.push_back(loss);
    res.last_loss = loss;
    res.steps_done = step + 1;
    const double el = now_seconds() - t0;
    const int done = step + 1 - start;
    if (!o.quiet && (done % std::max(1, o.log_every) == 0 || step + 1 == o.steps))
      std::fprintf(stderr, "train step %d/%d  loss %.4f  |g| %.3g  lr %.3g  %.0f tok/s  ETA %s\n", step + 1, o.steps,
                   loss, gnorm, lr_at(o.optim, step), double(done) * N / el,
                   mmss(el / done * (o.steps - step - 1)).c_str());
    if (!o.ckpt.empty() && ((step + 1) % std::max(1, o.ckpt_every) == 0 || step + 1 == o.steps)) {
      save_checkpoint(o.ckpt, st, opt, step + 1, loss);
      last_good = step + 1;
    }
  }
  res.optimizer_state_bytes = opt.state_bytes();
  res.skipped_steps = scaler.skipped();
  res.loss_scale = o.loss_scaling ? scaler.scale() : 0;
  res.seconds = now_seconds() - t0;
  res.tokens_per_s = double(res.steps_done - start) * N / std::max(res.seconds, 1e-9);
  return res;
}

}  // namespace lmp::train

#include "genmodels/train/trainer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/core/progress.h"
#include "genmodels/train/checkpoint.h"

namespace gm::train {
namespace {

std::atomic<int> g_signal{0};
extern "C" void on_signal(int sig) { g_signal.store(sig); }

// Installs SIGINT/SIGTERM handlers for the loop's lifetime; a second Ctrl-C kills as usual.
class SignalScope {
 public:
  SignalScope() {
    g_signal.store(0);
    prev_int_ = std::signal(SIGINT, on_signal);
    prev_term_ = std::signal(SIGTERM, on_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, prev_int_);
    std::signal(SIGTERM, prev_term_);
  }

 private:
  void (*prev_int_)(int);
  void (*prev_term_)(int);
};

torch::Tensor rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Tensor& state) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

torch::Tensor scalar(double v) { return torch::tensor(v, torch::kFloat64); }
torch::Tensor scalar(int64_t v) { return torch::tensor(v, torch::kInt64); }

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Gloo reduces the standard numeric types; others (bool, bf16) travel converted.
bool gloo_type(torch::ScalarType t) {
  return t == torch::kFloat32 || t == torch::kFloat64 || t == torch::kFloat16 ||
         t == torch::kInt64 || t == torch::kInt32 || t == torch::kUInt8 || t == torch::kInt8;
}

// Rank 0's parameters and buffers into every rank's module.
void broadcast_module(dist::Group& group, torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> state;
  for (const auto& p : m.parameters())
    if (p.numel() > 0) state.push_back(p);
  for (const auto& b : m.buffers())
    if (b.numel() > 0) state.push_back(b);
  std::vector<torch::Tensor> wire;
  for (const auto& t : state)
    wire.push_back(gloo_type(t.scalar_type()) ? t.detach() : t.detach().to(torch::kFloat64));
  group.broadcast(wire);
  for (size_t i = 0; i < state.size(); ++i)
    if (!gloo_type(state[i].scalar_type())) state[i].detach().copy_(wire[i]);
}

// A hash of the parameters' exact bits, to check that the replicas have not drifted apart.
torch::Tensor fingerprint(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  uint64_t h = 0;
  int64_t k = 1;
  for (const auto& p : m.parameters()) {
    torch::Tensor c = p.detach().to(torch::kCPU).contiguous();
    torch::Tensor bits = c.element_size() == 4 ? c.view(torch::kInt32) : c.view(torch::kUInt8);
    bits = bits.reshape({-1}).to(torch::kInt64);
    const torch::Tensor w = torch::arange(bits.numel(), torch::kInt64) % 1000003 + k;
    h = h * 31 + static_cast<uint64_t>((bits * w).sum().item<int64_t>());
    k += 7;
  }
  return torch::tensor({static_cast<int64_t>(h)}, torch::kInt64);
}

// A non-finite loss: stops the run, or (train.on_nan = rollback) sends it back to its checkpoint.
struct NonFiniteLoss : Error {
  using Error::Error;
};

// Fault injection for the reliability tests: GM_FAULT_NAN_AT=STEP[xTIMES] makes the loss of
// 1-based step STEP NaN, the first TIMES (default 1) times this process reaches it.
bool inject_nan(int64_t step) {
  static const std::pair<int64_t, int> plan = [] {
    const char* v = std::getenv("GM_FAULT_NAN_AT");
    if (!v || !*v) return std::pair<int64_t, int>{-1, 0};
    const std::string s = v;
    const auto x = s.find('x');
    return std::pair<int64_t, int>{std::stoll(s.substr(0, x)),
                                   x == std::string::npos ? 1 : std::stoi(s.substr(x + 1))};
  }();
  static int fired = 0;
  if (step != plan.first || fired >= plan.second) return false;
  ++fired;
  return true;
}

// Drops the records of steps after `step` (replayed after a kill or a rollback) and a torn last
// line; rewrites the file atomically only when something goes.
void trim_metrics(const std::string& path, int64_t step) {
  if (!std::filesystem::exists(path)) return;
  std::istringstream in(read_file(path));
  std::string kept, line;
  bool dropped = false;
  while (std::getline(in, line)) {
    Json rec = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_discarded() || (rec.contains("step") && rec["step"].get<int64_t>() > step)) {
      dropped = true;
      continue;
    }
    kept += line + "\n";
  }
  if (dropped) write_file_atomic(path, kept);
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

torch::Tensor Trainable::loss(const torch::Tensor&, const torch::Tensor&) {
  throw Error("this model has no single objective; it trains through its own train_step");
}

const KeyTable<TrainerOptions>& trainer_keys() {
  using O = TrainerOptions;
  static const KeyTable<O> table = [] {
    KeyTable<O> t;
    t.add("train.steps", &O::steps, "optimizer steps (0 = use train.minutes)");
    t.add("train.minutes", &O::minutes, "wall-clock budget in minutes (0 = use train.steps)");
    t.add("train.batch_size", &O::batch_size, "examples per step");
    t.add("train.optimizer", &O::optimizer, "optimizer", {"adam", "adamw"});
    t.add("train.lr", &O::lr, "peak learning rate");
    t.add("train.beta1", &O::beta1, "Adam beta1");
    t.add("train.beta2", &O::beta2, "Adam beta2");
    t.add("train.weight_decay", &O::weight_decay, "weight decay (decoupled for adamw)");
    t.add("train.warmup_steps", &O::warmup_steps, "linear LR warm-up steps");
    t.add("train.lr_schedule", &O::lr_schedule,
          "LR after warm-up (cosine decays over the budget of the current invocation; linear "
          "holds for its first half, then decays linearly)",
          {"constant", "cosine", "linear"});
    t.add("train.lr_min_ratio", &O::lr_min_ratio,
          "cosine / linear floor as a fraction of train.lr");
    t.add("train.grad_clip", &O::grad_clip, "max global gradient norm (0 = off)");
    t.add("train.ema_decay", &O::ema_decay, "EMA decay of the weights");
    t.add("train.ema_warmup", &O::ema_warmup, "EMA decay min(d, (1+n)/(10+n))");
    t.add("train.log_every", &O::log_every, "steps between metrics.jsonl records");
    t.add("train.sample_every", &O::sample_every,
          "steps between preview grids (0 = at the end only)");
    t.add("train.checkpoint_every", &O::checkpoint_every, "steps between checkpoints");
    t.add("train.dist_timeout", &O::dist_timeout,
          "data-parallel runs: seconds a collective waits before naming the ranks that stopped "
          "answering (longer than rank 0's slowest preview or checkpoint)");
    t.add("train.keep_checkpoints", &O::keep_checkpoints,
          "past checkpoints kept as checkpoints/step_NNNNNNN.pt besides checkpoint.pt (0 = none; "
          "sample or eval one with --checkpoint step_NNNNNNN)");
    t.add("train.on_nan", &O::on_nan,
          "on a non-finite loss: stop, or rollback (reload the last checkpoint, drop the "
          "offending batch, multiply the LR by train.nan_lr_factor; stops after 3 in a row)",
          {"stop", "rollback"});
    t.add("train.nan_lr_factor", &O::nan_lr_factor, "LR multiplier of each NaN rollback");
    t.add("train.eval_every", &O::eval_every,
          "steps between checks of generated samples by the Fashion-MNIST evaluator (class "
          "entropy, a mode-collapse monitor; 28x28 gray images; 0 = off)");
    return t;
  }();
  return table;
}

OptimizerOptions TrainerOptions::main_optimizer() const {
  OptimizerOptions o;
  o.kind = optimizer;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.weight_decay = weight_decay;
  o.lr.lr = lr;
  o.lr.warmup_steps = warmup_steps;
  o.lr.kind = lr_schedule;
  o.lr.min_ratio = lr_min_ratio;
  o.grad_clip = grad_clip;
  return o;
}

void TrainerOptions::validate() const {
  if (steps < 0 || minutes < 0 || (steps == 0 && minutes == 0))
    throw Error("set a training budget: --steps N or --minutes M (train.steps / train.minutes)");
  if (batch_size < 1) throw Error("train.batch_size must be >= 1");
  if (!(lr > 0)) throw Error("train.lr must be > 0");
  if (log_every < 1) throw Error("train.log_every must be >= 1");
  if (!(dist_timeout > 0)) throw Error("train.dist_timeout must be > 0 seconds");
  if (keep_checkpoints < 0) throw Error("train.keep_checkpoints must be >= 0");
  if (!(nan_lr_factor > 0 && nan_lr_factor <= 1))
    throw Error("train.nan_lr_factor must be in (0, 1]");
}

namespace {

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const OptimizerSpec& s) {
  const OptimizerOptions& o = s.options;
  if (o.kind == "adamw")
    return std::make_unique<torch::optim::AdamW>(s.params, torch::optim::AdamWOptions(o.lr.lr)
                                                               .betas({o.beta1, o.beta2})
                                                               .eps(o.eps)
                                                               .weight_decay(o.weight_decay));
  if (o.kind == "adam")
    return std::make_unique<torch::optim::Adam>(s.params, torch::optim::AdamOptions(o.lr.lr)
                                                              .betas({o.beta1, o.beta2})
                                                              .eps(o.eps)
                                                              .weight_decay(o.weight_decay));
  throw Error("optimizer '" + s.name + "': unknown kind '" + o.kind + "'; valid: adam, adamw");
}

// Named values of a logging interval, averaged when written.
struct Averages {
  std::vector<std::string> order;
  std::map<std::string, std::pair<double, int64_t>> sums;
  void add(const std::string& key, double v) {
    auto [it, fresh] = sums.try_emplace(key, 0.0, 0);
    if (fresh) order.push_back(key);
    it->second.first += v;
    it->second.second += 1;
  }
  void clear() {
    order.clear();
    sums.clear();
  }
};

}  // namespace

// The StepContext of one step: the trainer's optimizers, batcher and log.
class Trainer::Context : public StepContext {
 public:
  Context(Trainer& t, Averages& avg, std::map<std::string, double>& last)
      : t_(t), avg_(avg), last_(last) {}

  Slot& slot(const std::string& name) const {
    for (auto& s : t_.optimizers_)
      if (s.spec.name == name) return s;
    std::string valid;
    for (const auto& s : t_.optimizers_) valid += (valid.empty() ? "" : ", ") + s.spec.name;
    throw Error("train step asked for optimizer '" + name + "'; the model declared: " + valid);
  }

  double minimize_all(const std::vector<std::string>& names, const torch::Tensor& loss,
                      const std::string& log_as) override {
    if (names.empty()) throw Error("train step: minimize_all needs at least one optimizer");
    std::vector<Slot*> slots;
    std::string joined;
    for (const auto& n : names) {
      slots.push_back(&slot(n));
      joined += (joined.empty() ? "" : "+") + n;
    }
    double v = loss.item<double>();
    if (t_.distributed()) {  // the rank mean: logged, and every rank stops together on NaN
      torch::Tensor m = torch::tensor({v}, torch::kFloat64);
      t_.options_.group->all_reduce(m);
      v = m.item<double>() / t_.options_.group->size();
    }
    if (inject_nan(t_.step_ + 1)) v = std::nan("");
    if (!std::isfinite(v))
      throw NonFiniteLoss("loss" + (joined == "main" ? "" : " of optimizer '" + joined + "'") +
                          " is " + std::to_string(v) + " at step " + std::to_string(t_.step_ + 1) +
                          "; stopped, " + t_.run_.checkpoint() +
                          " (last good checkpoint) is untouched. Lower train.lr, " +
                          "raise train.warmup_steps, or set train.on_nan=rollback");
    for (Slot* s : slots) {
      s->optimizer->zero_grad();
      if (s->reducer) s->reducer->prepare();
    }
    loss.backward();
    if (t_.distributed()) {
      double wait = 0;
      for (Slot* s : slots) wait += s->reducer->finish();
      log("dist_wait_ms", 1000 * wait);
    }
    for (Slot* s : slots) {
      if (s->spec.options.grad_clip > 0) {
        const double norm =
            torch::nn::utils::clip_grad_norm_(s->spec.params, s->spec.options.grad_clip);
        log("grad_norm" + suffix(s->spec.name), norm);
      }
      s->optimizer->step();
    }
    log(log_as.empty() ? "loss" + suffix(names.front()) : log_as, v);
    return v;
  }
  static std::string suffix(const std::string& name) { return name == "main" ? "" : "_" + name; }
  torch::optim::Optimizer& optimizer(const std::string& name) override {
    return *slot(name).optimizer;
  }
  data::Batcher::Batch next_batch() override {
    auto b = t_.batcher_.next();
    const torch::Device dev(t_.options_.device);
    return {b.x.to(dev), b.y.to(dev)};
  }
  void log(const std::string& key, double value) override {
    avg_.add(key, value);
    last_[key] = value;
  }
  int64_t step() const override { return t_.step_; }
  torch::Device device() const override { return torch::Device(t_.options_.device); }
  bool bf16(const std::string& name) const override { return slot(name).spec.options.bf16; }

 private:
  Trainer& t_;
  Averages& avg_;
  std::map<std::string, double>& last_;
};

Trainer::Trainer(Trainable& model, TrainerOptions options, data::Batcher batcher, RunDir run,
                 Json meta)
    : model_(model),
      options_(std::move(options)),
      batcher_(std::move(batcher)),
      run_(std::move(run)),
      meta_(std::move(meta)) {
  options_.validate();
  for (auto& spec : model_.optimizers(options_.main_optimizer())) {
    for (const auto& s : optimizers_)
      if (s.spec.name == spec.name) throw Error("two optimizers named '" + spec.name + "'");
    Slot s;
    s.optimizer = make_optimizer(spec);
    s.spec = std::move(spec);
    optimizers_.push_back(std::move(s));
  }
  if (optimizers_.empty()) throw Error("the model declared no optimizer to train");
  if (distributed()) {
    // Every rank starts from rank 0's weights (a resume then loads the same checkpoint on all).
    int64_t n = 0;
    for (const auto& p : model_.module().parameters()) n += p.numel();
    const torch::Tensor counts = options_.group->all_gather(torch::tensor({n}, torch::kInt64));
    for (int r = 1; r < options_.group->size(); ++r)
      if (counts[r].item<int64_t>() != n)
        throw Error("rank " + std::to_string(r) + " built a model of " +
                    std::to_string(counts[r].item<int64_t>()) + " parameters, rank 0 one of " +
                    std::to_string(counts[0].item<int64_t>()) +
                    ": start every rank with the same command and config");
    broadcast_module(*options_.group, model_.module());
    for (auto& s : optimizers_)
      s.reducer = std::make_unique<dist::GradientReducer>(*options_.group, s.spec.params);
  }
  for (const auto& spec : model_.ema_targets())
    emas_.push_back(
        {spec, std::make_unique<Ema>(*spec.module, options_.ema_decay, options_.ema_warmup)});
  if (primary()) run_.create();
}

Trainer::~Trainer() = default;

std::vector<std::unique_ptr<EmaScope>> Trainer::ema_scope() const {
  std::vector<std::unique_ptr<EmaScope>> scopes;
  for (const auto& e : emas_) scopes.push_back(std::make_unique<EmaScope>(*e.spec.module, *e.ema));
  return scopes;
}

void Trainer::save_checkpoint(const std::string& path) const {
  // Every rank's generator state, so that a resume on as many ranks is bit-identical.
  // And a check that the replicas still hold identical weights (averaged gradients and identical
  // optimizer arithmetic keep them so; BatchNorm running statistics are per rank and not checked).
  torch::Tensor rank_rngs, prints;
  if (distributed()) {
    rank_rngs = options_.group->all_gather(rng_state());
    prints = options_.group->all_gather(fingerprint(model_.module()));
    for (int r = 1; r < options_.group->size(); ++r)
      if (!torch::equal(prints[r], prints[0]))
        throw Error("rank " + std::to_string(r) + "'s weights differ from rank 0's at step " +
                    std::to_string(step_) + " (a bug: please report it with the command); " + path +
                    " keeps the previous good state");
  }
  if (!primary()) return;
  torch::serialize::OutputArchive archive, model_ar, ema_ar, opt_ar;
  model_.module().save(model_ar);
  for (const auto& e : emas_) {
    torch::serialize::OutputArchive one;
    e.ema->save(one);
    ema_ar.write(e.spec.name, one);
  }
  for (const auto& s : optimizers_) {
    torch::serialize::OutputArchive one;
    s.optimizer->save(one);
    opt_ar.write(s.spec.name, one);
  }
  archive.write("model", model_ar);
  archive.write("ema", ema_ar);
  archive.write("optimizer", opt_ar);
  archive.write("step", scalar(step_));
  archive.write("elapsed", scalar(elapsed_));
  archive.write("rng", rng_state());
  if (rank_rngs.defined()) {
    archive.write("rng_ranks", rank_rngs);
    archive.write("replica_fingerprints", prints);
  }
  archive.write("lr_scale", scalar(lr_scale_));
  archive.write("nan_skips", torch::tensor(skip_steps_, torch::kInt64));
  archive.write("data_epoch", scalar(batcher_.epoch()));
  archive.write("data_position", scalar(batcher_.position()));
  archive.write("meta", c10::IValue(meta_.dump()));
  write_archive_atomic(path, archive);
}

void Trainer::resume() {
  const std::string path = run_.checkpoint();
  auto archive = open_checkpoint(path);
  try {
    torch::serialize::InputArchive model_ar, ema_ar, opt_ar;
    archive.read("model", model_ar);
    archive.read("ema", ema_ar);
    archive.read("optimizer", opt_ar);
    model_.module().load(model_ar);
    for (auto& e : emas_) {
      torch::serialize::InputArchive one;
      ema_ar.read(e.spec.name, one);
      e.ema->load(one);
    }
    for (auto& s : optimizers_) {
      torch::serialize::InputArchive one;
      opt_ar.read(s.spec.name, one);
      s.optimizer->load(one);
    }
    // Each read needs a fresh tensor: InputArchive::read set_()s a defined one in place.
    auto read = [&](const char* key) {
      torch::Tensor t;
      archive.read(key, t);
      return t;
    };
    step_ = read("step").item<int64_t>();
    elapsed_before_ = elapsed_ = read("elapsed").item<double>();
    set_rng_state(read("rng"));
    torch::Tensor rank_rngs;
    if (distributed() && options_.group->rank() > 0 && archive.try_read("rng_ranks", rank_rngs) &&
        rank_rngs.size(0) == options_.group->size()) {
      set_rng_state(rank_rngs[options_.group->rank()].clone());
      rank_rng_restored_ = true;
    }
    torch::Tensor epoch = read("data_epoch"), pos = read("data_position");
    batcher_.set_state(epoch.item<int64_t>(), pos.item<int64_t>());
    torch::Tensor scale, skips;  // absent from checkpoints older than train.on_nan
    lr_scale_ = archive.try_read("lr_scale", scale) ? scale.item<double>() : 1.0;
    skip_steps_.clear();
    if (archive.try_read("nan_skips", skips))
      for (int64_t i = 0; i < skips.numel(); ++i) skip_steps_.push_back(skips[i].item<int64_t>());
  } catch (const c10::Error& err) {
    throw Error(path + " does not match this model/config: " +
                std::string(err.what_without_backtrace()).substr(0, 200));
  }
  if (primary()) {
    run_.remove_stale_temp_files();  // a killed writer's
    trim_metrics(run_.metrics(), step_);
  }
}

void Trainer::save_and_keep(const std::string& path) {
  save_checkpoint(path);
  if (primary() && path == run_.checkpoint())
    run_.keep_checkpoint(step_, options_.keep_checkpoints);
}

void Trainer::roll_back(const std::string& why, int64_t failed) {
  if (failed > last_nan_step_) last_nan_step_ = failed;
  if (++rollbacks_in_a_row_ > 3)
    throw Error(why.substr(0, why.find(';')) +
                " again: 3 rollbacks in a row did not get past it, so the run stops (" +
                run_.checkpoint() + " is the last good state; lower train.lr)");
  resume();
  if (std::find(skip_steps_.begin(), skip_steps_.end(), failed) == skip_steps_.end())
    skip_steps_.push_back(failed);
  lr_scale_ *= options_.nan_lr_factor;
  if (primary())
    std::cerr << "\ngenmodels: " << why.substr(0, why.find(';')) << ": rolled back to step "
              << step_ << " (" << run_.checkpoint() << "), dropping the batch of step "
              << failed + 1 << ", LR x" << lr_scale_ << " (rollback " << rollbacks_in_a_row_
              << " of 3)\n";
}

double Trainer::budget_fraction() const {
  double f = 0;
  if (options_.steps > 0) f = std::max(f, static_cast<double>(step_) / options_.steps);
  if (options_.minutes > 0) f = std::max(f, elapsed_ / (60.0 * options_.minutes));
  return f;
}

bool Trainer::budget_done() const {
  return (options_.steps > 0 && step_ >= options_.steps) ||
         (options_.minutes > 0 && elapsed_ >= 60.0 * options_.minutes);
}

TrainResult Trainer::run(const PreviewFn& preview_fn, const MonitorFn& monitor_fn) {
  SignalScope signals;
  const torch::Device device(options_.device);
  const std::string ckpt = run_.checkpoint();
  std::optional<JsonlWriter> log;
  if (primary()) {
    if (step_ == 0) {  // a fresh start over an attempt killed before its first checkpoint
      trim_metrics(run_.metrics(), 0);
      run_.remove_stale_temp_files();
    }
    log.emplace(run_.metrics(), /*append=*/true);
  }
  if (step_ == 0) {  // before ranks > 0 reseed: every rank initialises alike
    auto b = batcher_.peek_global();
    model_.data_init({b.x.to(device), b.y.to(device)});
  }
  if (distributed() && options_.group->rank() > 0 && !rank_rng_restored_) {
    // Each rank draws its own noise (diffusion timesteps, dropout, ...): a generator seeded from
    // (seed, rank, step), so a run resumed on a different number of ranks stays deterministic.
    const uint64_t r = static_cast<uint64_t>(options_.group->rank());
    torch::manual_seed(
        splitmix64(splitmix64(options_.seed ^ (r << 32)) ^ static_cast<uint64_t>(step_)) >> 1);
  }
  if (options_.on_nan == "rollback" && !run_.has_checkpoint())
    save_checkpoint(ckpt);  // something to roll back to before the first periodic checkpoint
  const int64_t total = options_.steps > 0 ? options_.steps : 0;
  Progress progress(total, step_, "train");
  torch::nn::Module& module = model_.module();
  module.train();

  // Runs `f` under the EMA weights in eval mode without perturbing training randomness.
  auto under_ema = [&](const std::function<void()>& f) {
    const torch::Tensor saved_rng = rng_state();
    {
      auto scope = ema_scope();
      module.eval();
      f();
      module.train();
    }
    set_rng_state(saved_rng);
  };
  auto preview = [&](int64_t step) {
    if (preview_fn && primary()) under_ema([&] { preview_fn(step, run_.preview(step)); });
  };

  TrainResult result;
  auto t_start = std::chrono::steady_clock::now();
  auto t_log = t_start;
  int64_t log_step0 = step_;
  Averages avg;
  std::map<std::string, double> last;
  Context ctx(*this, avg, last);
  while (!budget_done()) {
    const double fraction = budget_fraction();
    for (auto& s : optimizers_) {
      const double lr = s.spec.options.lr.at(step_, fraction) * lr_scale_;
      for (auto& group : s.optimizer->param_groups()) group.options().set_lr(lr);
    }
    last.clear();
    // A batch that made the loss non-finite is dropped on the retry (train.on_nan = rollback).
    if (std::find(skip_steps_.begin(), skip_steps_.end(), step_) != skip_steps_.end())
      batcher_.next();
    auto batch = batcher_.next();
    try {
      model_.train_step({batch.x.to(device), batch.y.to(device)}, ctx);
    } catch (const NonFiniteLoss& e) {
      if (options_.on_nan != "rollback") throw;
      const int64_t failed = step_;
      const double now_elapsed =  // the wall clock keeps running across the rollback
          elapsed_before_ +
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      log.reset();  // resume() trims the metrics file: closed, then reopened
      roll_back(e.what(), failed);
      if (primary()) {
        log.emplace(run_.metrics(), /*append=*/true);
        log->write({{"step", step_}, {"rollback_from", failed + 1}, {"lr_scale", lr_scale_}});
      }
      elapsed_before_ = elapsed_ = now_elapsed;
      t_start = t_log = std::chrono::steady_clock::now();
      log_step0 = step_;
      avg.clear();
      continue;
    }
    if (step_ > last_nan_step_) rollbacks_in_a_row_ = 0;
    ++step_;
    for (auto& e : emas_) e.ema->update(*e.spec.module, step_);
    if (monitor_fn && primary() && options_.eval_every > 0 && step_ % options_.eval_every == 0)
      under_ema([&] {  // joins this step's record
        for (const auto& [key, v] : monitor_fn(step_)) avg.add(key, v);
      });

    const auto now = std::chrono::steady_clock::now();
    elapsed_ = elapsed_before_ + std::chrono::duration<double>(now - t_start).count();
    bool signalled = g_signal.load() != 0;
    if (distributed()) {
      // The ranks agree on rank 0's clock (the budget) and stop together on any rank's signal.
      torch::Tensor agree =
          torch::tensor({primary() ? elapsed_ : 0.0, signalled ? 1.0 : 0.0}, torch::kFloat64);
      options_.group->all_reduce(agree, /*max=*/true);
      elapsed_ = agree[0].item<double>();
      signalled = agree[1].item<double>() > 0;
    }
    result.final_loss = last.count("loss") ? last["loss"]
                        : last.empty()     ? 0.0
                                           : last.begin()->second;
    if (log && (step_ % options_.log_every == 0 || budget_done())) {
      const double dt = std::chrono::duration<double>(now - t_log).count();
      Json rec = {{"step", step_}};
      for (const auto& key : avg.order) {
        const auto& [sum, count] = avg.sums.at(key);
        rec[key] = sum / count;
      }
      for (const auto& s : optimizers_)
        rec[s.spec.name == "main" ? "lr" : "lr_" + s.spec.name] =
            s.optimizer->param_groups().front().options().get_lr();
      rec["img_per_s"] = dt > 0 ? (step_ - log_step0) * options_.batch_size / dt : 0.0;
      rec["wall_time"] = elapsed_;
      log->write(rec);
      t_log = now;
      log_step0 = step_;
      avg.clear();
    }
    std::string extra;
    for (const auto& [key, v] : last)
      if (key.rfind("loss", 0) == 0) extra += fmt((key + " %.4f  ").c_str(), v);
    extra +=
        fmt("lr %.2e", optimizers_.front().optimizer->param_groups().front().options().get_lr());
    if (options_.minutes > 0 && total == 0)
      extra += "  " + format_duration(elapsed_) + "/" + format_duration(60 * options_.minutes);
    progress.update(step_, extra);

    if (options_.sample_every > 0 && step_ % options_.sample_every == 0 && !budget_done())
      preview(step_);
    const bool stop_now = (options_.stop_at > 0 && step_ >= options_.stop_at) || signalled;
    if (stop_now) {
      save_and_keep(ckpt);
      progress.finish("stopped at step " + std::to_string(step_) + "; saved " + ckpt +
                      " (continue with --resume)");
      result.interrupted = true;
      break;
    }
    if (options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0 && !budget_done())
      save_and_keep(ckpt);
  }
  if (!result.interrupted) {
    save_and_keep(ckpt);
    progress.finish("done: " + std::to_string(step_) + " steps in " + format_duration(elapsed_) +
                    "; checkpoint " + ckpt);
    preview(step_);
  }
  result.step = step_;
  result.seconds = elapsed_;
  return result;
}

}  // namespace gm::train

#include "genmodels/train/trainer.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "genmodels/core/atomic_file.h"
#include "genmodels/core/error.h"
#include "genmodels/core/jsonl.h"
#include "genmodels/core/progress.h"

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

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::vector<ConfigKey> trainer_config_keys() {
  using T = ValueType;
  return {
      {"train.steps", T::Int, "0", "optimizer steps (0 = use train.minutes)"},
      {"train.minutes", T::Float, "0", "wall-clock budget in minutes (0 = use train.steps)"},
      {"train.batch_size", T::Int, "128", "examples per step"},
      {"train.optimizer", T::String, "adam", "optimizer", {"adam", "adamw"}},
      {"train.lr", T::Float, "2e-4", "peak learning rate"},
      {"train.beta1", T::Float, "0.9", "Adam beta1"},
      {"train.beta2", T::Float, "0.999", "Adam beta2"},
      {"train.weight_decay", T::Float, "0", "weight decay (decoupled for adamw)"},
      {"train.warmup_steps", T::Int, "200", "linear LR warm-up steps"},
      {"train.lr_schedule", T::String, "constant", "LR after warm-up", {"constant", "cosine"}},
      {"train.lr_min_ratio", T::Float, "0.0", "cosine floor as a fraction of train.lr"},
      {"train.grad_clip", T::Float, "1.0", "max global gradient norm (0 = off)"},
      {"train.ema_decay", T::Float, "0.999", "EMA decay of the weights"},
      {"train.ema_warmup", T::Bool, "true", "EMA decay min(d, (1+n)/(10+n))"},
      {"train.log_every", T::Int, "50", "steps between metrics.jsonl records"},
      {"train.sample_every", T::Int, "0", "steps between preview grids (0 = at the end only)"},
      {"train.checkpoint_every", T::Int, "1000", "steps between checkpoints"},
  };
}

TrainerOptions trainer_options_from(const Config& c) {
  TrainerOptions o;
  o.steps = c.get_int("train.steps");
  o.minutes = c.get_float("train.minutes");
  if (o.steps < 0 || o.minutes < 0 || (o.steps == 0 && o.minutes == 0))
    throw Error("set a training budget: --steps N or --minutes M (train.steps / train.minutes)");
  o.batch_size = c.get_int("train.batch_size");
  if (o.batch_size < 1) throw Error("train.batch_size must be >= 1");
  o.optimizer = c.get_string("train.optimizer");
  o.lr.lr = c.get_float("train.lr");
  if (!(o.lr.lr > 0)) throw Error("train.lr must be > 0");
  o.beta1 = c.get_float("train.beta1");
  o.beta2 = c.get_float("train.beta2");
  o.weight_decay = c.get_float("train.weight_decay");
  o.lr.warmup_steps = c.get_int("train.warmup_steps");
  o.lr.kind = c.get_string("train.lr_schedule");
  o.lr.min_ratio = c.get_float("train.lr_min_ratio");
  o.grad_clip = c.get_float("train.grad_clip");
  o.ema_decay = c.get_float("train.ema_decay");
  o.ema_warmup = c.get_bool("train.ema_warmup");
  o.log_every = std::max<int64_t>(1, c.get_int("train.log_every"));
  o.sample_every = c.get_int("train.sample_every");
  o.checkpoint_every = c.get_int("train.checkpoint_every");
  return o;
}

std::string checkpoint_path(const std::string& run_dir) { return run_dir + "/checkpoint.pt"; }

Trainer::Trainer(torch::nn::Module& module, TrainerOptions options, data::Batcher batcher,
                 std::string run_dir, Json meta)
    : module_(module),
      options_(std::move(options)),
      batcher_(std::move(batcher)),
      run_dir_(std::move(run_dir)),
      meta_(std::move(meta)) {
  auto params = module_.parameters();
  if (options_.optimizer == "adamw") {
    optimizer_ =
        std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(options_.lr.lr)
                                                          .betas({options_.beta1, options_.beta2})
                                                          .eps(options_.eps)
                                                          .weight_decay(options_.weight_decay));
  } else {
    optimizer_ =
        std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(options_.lr.lr)
                                                         .betas({options_.beta1, options_.beta2})
                                                         .eps(options_.eps)
                                                         .weight_decay(options_.weight_decay));
  }
  ema_ = std::make_unique<Ema>(module_, options_.ema_decay, options_.ema_warmup);
  make_dirs(run_dir_);
}

Trainer::~Trainer() = default;

void Trainer::save_checkpoint(const std::string& path) const {
  torch::serialize::OutputArchive archive;
  torch::serialize::OutputArchive model_ar, ema_ar, opt_ar;
  module_.save(model_ar);
  ema_->save(ema_ar);
  optimizer_->save(opt_ar);
  archive.write("model", model_ar);
  archive.write("ema", ema_ar);
  archive.write("optimizer", opt_ar);
  archive.write("step", scalar(step_));
  archive.write("elapsed", scalar(elapsed_));
  archive.write("rng", rng_state());
  archive.write("data_epoch", scalar(batcher_.epoch()));
  archive.write("data_position", scalar(batcher_.position()));
  archive.write("meta", c10::IValue(meta_.dump()));
  write_file_atomic(path, [&](std::ostream& out) { archive.save_to(out); });
}

void save_weights(const std::string& path, torch::nn::Module& module, const Json& meta) {
  torch::serialize::OutputArchive archive, model_ar;
  module.save(model_ar);
  archive.write("model", model_ar);
  archive.write("meta", c10::IValue(meta.dump()));
  write_file_atomic(path, [&](std::ostream& out) { archive.save_to(out); });
}

namespace {
torch::serialize::InputArchive open_checkpoint(const std::string& path) {
  if (!std::filesystem::exists(path))
    throw Error("no checkpoint at " + path + " (train first, or point to a run directory)");
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error&) {
    throw Error(path + " is not a readable genmodels checkpoint (corrupt or truncated; " +
                "restore a copy or train again)");
  }
  return archive;
}
}  // namespace

Json read_checkpoint_meta(const std::string& path) {
  auto archive = open_checkpoint(path);
  c10::IValue meta;
  if (!archive.try_read("meta", meta) || !meta.isString())
    throw Error(path + " has no genmodels metadata (not a genmodels checkpoint)");
  return Json::parse(meta.toStringRef());
}

void load_checkpoint_weights(const std::string& path, torch::nn::Module& module, bool ema) {
  auto archive = open_checkpoint(path);
  torch::serialize::InputArchive model_ar;
  if (!archive.try_read("model", model_ar))
    throw Error(path + " has no model weights (not a genmodels checkpoint)");
  try {
    module.load(model_ar);
    if (ema) {
      torch::serialize::InputArchive ema_ar;
      if (archive.try_read("ema", ema_ar)) {
        Ema e(module, 0.0, false);
        e.load(ema_ar);
        e.copy_to(module);
      }
    }
  } catch (const c10::Error& err) {
    throw Error(path + ": weights do not match the model built from its config (" +
                std::string(err.what_without_backtrace()).substr(0, 160) + ")");
  }
}

void Trainer::resume(const std::string& path) {
  auto archive = open_checkpoint(path);
  try {
    torch::serialize::InputArchive model_ar, ema_ar, opt_ar;
    archive.read("model", model_ar);
    archive.read("ema", ema_ar);
    archive.read("optimizer", opt_ar);
    module_.load(model_ar);
    ema_->load(ema_ar);
    optimizer_->load(opt_ar);
    // Each read needs a fresh tensor: InputArchive::read set_()s a defined one in place.
    auto read = [&](const char* key) {
      torch::Tensor t;
      archive.read(key, t);
      return t;
    };
    step_ = read("step").item<int64_t>();
    elapsed_before_ = elapsed_ = read("elapsed").item<double>();
    set_rng_state(read("rng"));
    torch::Tensor epoch = read("data_epoch"), pos = read("data_position");
    batcher_.set_state(epoch.item<int64_t>(), pos.item<int64_t>());
  } catch (const c10::Error& err) {
    throw Error(path + " does not match this model/config: " +
                std::string(err.what_without_backtrace()).substr(0, 200));
  }
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

TrainResult Trainer::run(const TrainHooks& hooks) {
  SignalScope signals;
  const torch::Device device(options_.device);
  const std::string ckpt = checkpoint_path(run_dir_);
  make_dirs(run_dir_ + "/samples");
  JsonlWriter log(run_dir_ + "/metrics.jsonl", /*append=*/true);
  const int64_t total = options_.steps > 0 ? options_.steps : 0;
  Progress progress(total, step_, "train");
  module_.train();

  auto preview = [&](int64_t step) {
    if (!hooks.preview) return;
    const torch::Tensor saved_rng = rng_state();  // previews must not perturb training randomness
    {
      EmaScope scope(module_, *ema_);
      module_.eval();
      char name[64];
      std::snprintf(name, sizeof name, "/samples/step_%07lld.png", static_cast<long long>(step));
      hooks.preview(step, run_dir_ + name);
      module_.train();
    }
    set_rng_state(saved_rng);
  };

  TrainResult result;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_log = t_start;
  double loss_sum = 0;
  int64_t loss_count = 0, log_step0 = step_;
  while (!budget_done()) {
    auto batch = batcher_.next();
    torch::Tensor x = batch.x.to(device), y = batch.y.to(device);
    const double lr = options_.lr.at(step_, budget_fraction());
    for (auto& group : optimizer_->param_groups()) group.options().set_lr(lr);

    optimizer_->zero_grad();
    torch::Tensor loss = hooks.loss(x, y);
    const double loss_v = loss.item<double>();
    if (!std::isfinite(loss_v))
      throw Error("loss is " + std::to_string(loss_v) + " at step " + std::to_string(step_ + 1) +
                  "; stopped, " + ckpt + " (last good checkpoint) is untouched. Lower train.lr " +
                  "or raise train.warmup_steps");
    loss.backward();
    double grad_norm = 0;
    if (options_.grad_clip > 0)
      grad_norm = torch::nn::utils::clip_grad_norm_(module_.parameters(), options_.grad_clip);
    optimizer_->step();
    ++step_;
    ema_->update(module_, step_);

    const auto now = std::chrono::steady_clock::now();
    elapsed_ = elapsed_before_ + std::chrono::duration<double>(now - t_start).count();
    loss_sum += loss_v;
    ++loss_count;
    result.final_loss = loss_v;
    if (step_ % options_.log_every == 0 || budget_done()) {
      const double dt = std::chrono::duration<double>(now - t_log).count();
      Json rec = {{"step", step_},
                  {"loss", loss_sum / loss_count},
                  {"lr", lr},
                  {"grad_norm", grad_norm},
                  {"img_per_s", dt > 0 ? (step_ - log_step0) * options_.batch_size / dt : 0.0},
                  {"wall_time", elapsed_}};
      log.write(rec);
      t_log = now;
      log_step0 = step_;
      loss_sum = 0;
      loss_count = 0;
    }
    std::string extra = fmt("loss %.4f", loss_v) + fmt("  lr %.2e", lr);
    if (options_.minutes > 0 && total == 0)
      extra += "  " + format_duration(elapsed_) + "/" + format_duration(60 * options_.minutes);
    progress.update(step_, extra);

    if (options_.sample_every > 0 && step_ % options_.sample_every == 0 && !budget_done())
      preview(step_);
    const bool stop_now = (options_.stop_at > 0 && step_ >= options_.stop_at) || g_signal.load();
    if (stop_now) {
      save_checkpoint(ckpt);
      progress.finish("stopped at step " + std::to_string(step_) + "; saved " + ckpt +
                      " (continue with --resume)");
      result.interrupted = true;
      break;
    }
    if (options_.checkpoint_every > 0 && step_ % options_.checkpoint_every == 0 && !budget_done())
      save_checkpoint(ckpt);
  }
  if (!result.interrupted) {
    save_checkpoint(ckpt);
    progress.finish("done: " + std::to_string(step_) + " steps in " + format_duration(elapsed_) +
                    "; checkpoint " + ckpt);
    preview(step_);
  }
  result.step = step_;
  result.seconds = elapsed_;
  return result;
}

}  // namespace gm::train

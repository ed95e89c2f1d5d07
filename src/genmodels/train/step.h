// The contract between a model and the shared training loop. A model owns its train step
// (`Trainable::train_step`) and declares what the loop must keep for it: named optimizers, each
// over its own parameters with its own LR schedule, clipping and precision ("main" for most
// families; "g" and "d" for GANs; four for CycleGAN), and named EMA targets (the whole network,
// or e.g. only the generator). The loop (train/trainer.h) owns budgets, logging of the named
// values a step reports, EMA updates, previews, signals and checkpoints of every optimizer and
// EMA by name.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "genmodels/data/dataset.h"
#include "genmodels/nn/precision.h"
#include "genmodels/train/lr_schedule.h"

namespace gm::train {

/// One optimizer's settings; the "train.*" keys fill the "main" one (trainer_keys()), a model
/// derives the others from it (e.g. a GAN's discriminator LR).
struct OptimizerOptions {
  std::string kind = "adam";  ///< "adam" | "adamw"
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  LrSchedule lr;           ///< peak LR, warm-up, constant/cosine decay over the budget
  double grad_clip = 1.0;  ///< max global gradient norm of this optimizer's parameters (0 = off)
  bool bf16 = false;       ///< StepContext::autocast(name) runs its forward passes in bf16
};

/// A named optimizer over a parameter group.
struct OptimizerSpec {
  std::string name;
  std::vector<torch::Tensor> params;
  OptimizerOptions options;
};

/// A named exponential moving average of a (sub)module's parameters; sampling uses it.
struct EmaSpec {
  std::string name;
  torch::nn::Module* module = nullptr;
};

/// What a train step can do: step a named optimizer on a loss, draw extra batches (e.g. the
/// critic steps of WGAN-GP), log named values. Provided by the Trainer for one step.
class StepContext {
 public:
  virtual ~StepContext() = default;
  /// zero_grad, loss.backward(), clip, step of optimizer `name`. Throws gm::Error when the loss is
  /// not finite (the last good checkpoint is untouched). Logs the loss as `log_as` ("loss" for the
  /// main optimizer, "loss_<name>" otherwise when empty) and the gradient norm. Returns the loss.
  double minimize(const std::string& name, const torch::Tensor& loss,
                  const std::string& log_as = "") {
    return minimize_all({name}, loss, log_as);
  }
  /// One loss stepped by several optimizers (e.g. CycleGAN's two generators under their joint
  /// cycle loss): zero_grad of each, one backward, then clip and step of each in turn. Logged as
  /// `log_as`, or as minimize() logs it for the first name.
  virtual double minimize_all(const std::vector<std::string>& names, const torch::Tensor& loss,
                              const std::string& log_as = "") = 0;
  /// The optimizer itself, for steps that need more than minimize().
  virtual torch::optim::Optimizer& optimizer(const std::string& name) = 0;
  /// The next training batch (already on the device); deterministic and resumable.
  virtual data::Batcher::Batch next_batch() = 0;
  /// Adds a named value to this step's record (averaged over the logging interval).
  virtual void log(const std::string& key, double value) = 0;
  /// 0-based index of the step being taken.
  virtual int64_t step() const = 0;
  virtual torch::Device device() const = 0;
  /// True when optimizer `name` asked for bf16 autocast.
  virtual bool bf16(const std::string& name) const = 0;
  /// CPU bf16 autocast for the forward passes of optimizer `name`'s loss when its options ask for
  /// it (a no-op otherwise): `auto scope = ctx.autocast("d");`.
  nn::AutocastScope autocast(const std::string& name) const {
    return nn::AutocastScope(bf16(name) ? nn::Precision::Bf16 : nn::Precision::Fp32);
  }
};

/// Anything the Trainer can train.
class Trainable {
 public:
  virtual ~Trainable() = default;
  /// Every network and buffer the run checkpoints.
  virtual torch::nn::Module& module() = 0;
  /// The optimizers a step uses; `main` holds the train.* settings. Default: one optimizer
  /// "main" over every parameter.
  virtual std::vector<OptimizerSpec> optimizers(const OptimizerOptions& main) {
    return {{"main", module().parameters(), main}};
  }
  /// The EMAs the loop keeps; sampling swaps them in. Default: "main" over the whole module.
  virtual std::vector<EmaSpec> ema_targets() { return {{"main", &module()}}; }
  /// One training step on `batch` (on the device). Randomness only from LibTorch's default
  /// generator, so that resumed runs are bit-identical. Default: minimize("main", loss(...)),
  /// for families with one objective; GANs and the like override it.
  virtual void train_step(const data::Batcher::Batch& batch, StepContext& ctx) {
    ctx.minimize("main", loss(batch.x, batch.y));
  }
  /// Data-dependent initialisation before the first step of a fresh run (Glow's ActNorm,
  /// Kingma & Dhariwal 2018 sec. 3.1), on the first global batch: every data-parallel rank gets
  /// the same batch and must end with the same weights, so randomness it draws must be restored.
  /// Default: none (initialisation is data-independent).
  virtual void data_init(const data::Batcher::Batch& batch) {}
  /// The objective of a one-optimizer family on a batch (what the default train_step minimises;
  /// benches time it). Families that override train_step need not have one.
  virtual torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y);
};

}  // namespace gm::train

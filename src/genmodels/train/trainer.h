// The training loop shared by every gradient-trained family: step or wall-clock budget, the
// model's own train step (train/step.h) with named optimizers (Adam/AdamW, LR warm-up + schedule,
// gradient clipping each), named EMAs, progress bar, JSONL metrics of every named value, periodic
// previews, atomic checkpoints, SIGINT/SIGTERM save-and-exit and bit-identical resume.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/core/options.h"
#include "genmodels/data/dataset.h"
#include "genmodels/train/distributed.h"
#include "genmodels/train/ema.h"
#include "genmodels/train/run_dir.h"
#include "genmodels/train/step.h"

namespace gm::train {

/// The "train.*" settings; each member is bound to its key by trainer_keys().
struct TrainerOptions {
  int64_t steps = 0;               ///< train.steps: optimizer steps (0 = use minutes)
  double minutes = 0;              ///< train.minutes: wall-clock budget; both set: first to end
  int64_t batch_size = 128;        ///< train.batch_size
  std::string optimizer = "adam";  ///< train.optimizer: adam | adamw
  double lr = 2e-4;                ///< train.lr: peak learning rate
  double beta1 = 0.9;              ///< train.beta1
  double beta2 = 0.999;            ///< train.beta2
  double weight_decay = 0.0;       ///< train.weight_decay
  int64_t warmup_steps = 200;      ///< train.warmup_steps
  std::string lr_schedule = "constant";  ///< train.lr_schedule: constant | cosine
  double lr_min_ratio = 0.0;             ///< train.lr_min_ratio: cosine floor / lr
  double grad_clip = 1.0;                ///< train.grad_clip (0 = off)
  double ema_decay = 0.999;              ///< train.ema_decay (0 = EMA equals the weights)
  bool ema_warmup = true;                ///< train.ema_warmup: decay min(d, (1+n)/(10+n))
  int64_t log_every = 50;                ///< train.log_every
  int64_t sample_every = 0;              ///< train.sample_every (0 = only at the end)
  int64_t checkpoint_every = 1000;       ///< train.checkpoint_every (always one at the end)
  int64_t eval_every = 0;        ///< train.eval_every: steps between monitor calls (0 = off)
  double dist_timeout = 300;     ///< train.dist_timeout: seconds a collective waits for the ranks
  int64_t keep_checkpoints = 0;  ///< train.keep_checkpoints: past checkpoints kept (0 = none)
  std::string on_nan = "stop";   ///< train.on_nan: stop | rollback
  double nan_lr_factor = 0.5;    ///< train.nan_lr_factor: LR multiplier of each rollback

  int64_t stop_at = 0;  ///< behave as if interrupted after this step (tests of resume)
  std::string device = "cpu";
  uint64_t seed = 0;  ///< the run's seed (ranks > 0 derive their training randomness from it)
  /// Data-parallel training when set (size > 1): the batcher must be sharded to match; the loop
  /// averages every optimizer's gradients over the ranks, and only rank 0 writes.
  std::shared_ptr<dist::Group> group;

  /// The main optimizer's settings (kind, betas, LR schedule, clipping).
  OptimizerOptions main_optimizer() const;
  /// Throws gm::Error naming the key when a value is out of range.
  void validate() const;
};

/// The train.* keys, bound to TrainerOptions.
const KeyTable<TrainerOptions>& trainer_keys();

/// Called with the step and the path of the preview grid to write; runs under the EMA weights in
/// eval mode, and the training RNG state is restored afterwards.
using PreviewFn = std::function<void(int64_t step, const std::string& path)>;

/// Called every train.eval_every steps like a preview (EMA weights, eval mode, RNG restored);
/// the named values it returns join the next metrics.jsonl record.
using MonitorFn = std::function<std::map<std::string, double>(int64_t step)>;

struct TrainResult {
  int64_t step = 0;
  bool interrupted = false;
  double final_loss = 0;  ///< the last step's "loss" (or its first logged value)
  double seconds = 0;
};

class Trainer {
 public:
  /// `meta` (model name, resolved config, data description) is stored in every checkpoint.
  Trainer(Trainable& model, TrainerOptions options, data::Batcher batcher, RunDir run, Json meta);
  ~Trainer();

  /// Restores full state from the run's checkpoint (weights, EMAs, optimizers, step, elapsed
  /// time, RNG, data order).
  void resume();
  /// Trains until the budget ends, a loss is not finite (throws gm::Error) or a signal arrives.
  TrainResult run(const PreviewFn& preview = {}, const MonitorFn& monitor = {});
  /// Writes the full state atomically to `path` (data-parallel: a collective; rank 0 writes the
  /// state and every rank's generator state).
  void save_checkpoint(const std::string& path) const;

  int64_t step() const { return step_; }
  /// Swaps every EMA into its module for the scope's lifetime.
  std::vector<std::unique_ptr<EmaScope>> ema_scope() const;

 private:
  class Context;
  struct Slot {
    OptimizerSpec spec;
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    std::unique_ptr<dist::GradientReducer> reducer;  ///< data-parallel runs only
  };
  struct EmaSlot {
    EmaSpec spec;
    std::unique_ptr<Ema> ema;
  };
  double budget_fraction() const;
  bool budget_done() const;
  bool distributed() const { return options_.group && options_.group->size() > 1; }
  bool primary() const { return !distributed() || options_.group->rank() == 0; }

  Trainable& model_;
  TrainerOptions options_;
  data::Batcher batcher_;
  RunDir run_;
  Json meta_;
  std::vector<Slot> optimizers_;
  std::vector<EmaSlot> emas_;
  int64_t step_ = 0;
  double elapsed_before_ = 0;       // seconds trained by earlier (resumed) runs
  double elapsed_ = 0;              // seconds trained in total so far
  bool rank_rng_restored_ = false;  // a rank > 0 got its own generator state from the checkpoint
  // train.on_nan = rollback: the LR multiplier so far, the steps (0-based) whose batch is dropped,
  // and the rollbacks since the run last got past a failed step. Checkpointed.
  double lr_scale_ = 1.0;
  std::vector<int64_t> skip_steps_;
  int rollbacks_in_a_row_ = 0;
  int64_t last_nan_step_ = -1;
  /// Reloads the checkpoint after a non-finite loss at step `failed` (0-based) and plans the
  /// retry; throws once three rollbacks in a row did not get past it.
  void roll_back(const std::string& why, int64_t failed);
  void save_and_keep(const std::string& path);
};

}  // namespace gm::train

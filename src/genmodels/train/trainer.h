// The training loop shared by every family: optimizer (Adam/AdamW), LR warm-up + schedule,
// gradient clipping, EMA, step or wall-clock budget, progress bar, JSONL metrics, periodic
// sample grids and atomic checkpoints, SIGINT/SIGTERM save-and-exit, bit-identical resume.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "genmodels/core/config.h"
#include "genmodels/core/json.h"
#include "genmodels/data/dataset.h"
#include "genmodels/train/ema.h"
#include "genmodels/train/lr_schedule.h"

namespace gm::train {

/// The "train.*" keys every model shares (the same struct the config fills).
std::vector<ConfigKey> trainer_config_keys();

struct TrainerOptions {
  int64_t steps = 0;         ///< optimizer steps in the budget (0 = use minutes)
  double minutes = 0;        ///< wall-clock budget (0 = use steps); both set: whichever ends first
  int64_t batch_size = 128;  ///< examples per step
  std::string optimizer = "adam";  ///< "adam" | "adamw"
  double beta1 = 0.9, beta2 = 0.999, weight_decay = 0.0, eps = 1e-8;
  LrSchedule lr;                    ///< peak LR, warm-up, constant/cosine
  double grad_clip = 1.0;           ///< max global gradient norm (0 = off)
  double ema_decay = 0.999;         ///< EMA decay (0 = EMA equals the weights)
  bool ema_warmup = true;           ///< decay min(d, (1+n)/(10+n))
  int64_t log_every = 50;           ///< steps between metrics.jsonl records
  int64_t sample_every = 0;         ///< steps between preview grids (0 = only at the end)
  int64_t checkpoint_every = 1000;  ///< steps between checkpoints (always one at the end)
  int64_t stop_at = 0;              ///< behave as if interrupted after this step (tests of resume)
  std::string device = "cpu";
};
TrainerOptions trainer_options_from(const Config& config);

struct TrainHooks {
  /// Loss of one batch (already on the device). Randomness must come from the default generator.
  std::function<torch::Tensor(const torch::Tensor& x, const torch::Tensor& y)> loss;
  /// Writes a preview grid at `path` (EMA weights are swapped in, eval mode, RNG state restored).
  std::function<void(int64_t step, const std::string& path)> preview;
};

struct TrainResult {
  int64_t step = 0;
  bool interrupted = false;
  double final_loss = 0;
  double seconds = 0;
};

class Trainer {
 public:
  /// `meta` (model name, resolved config, data description) is stored in every checkpoint.
  Trainer(torch::nn::Module& module, TrainerOptions options, data::Batcher batcher,
          std::string run_dir, Json meta);
  ~Trainer();

  /// Restores full state from `path` (model, EMA, optimizer, step, elapsed time, RNG, data order).
  void resume(const std::string& path);
  /// Trains until the budget ends, the loss is not finite (throws gm::Error) or a signal arrives.
  TrainResult run(const TrainHooks& hooks);
  /// Writes the full state atomically to `path`.
  void save_checkpoint(const std::string& path) const;

  int64_t step() const { return step_; }
  const Ema& ema() const { return *ema_; }

 private:
  double budget_fraction() const;
  bool budget_done() const;

  torch::nn::Module& module_;
  TrainerOptions options_;
  data::Batcher batcher_;
  std::string run_dir_;
  Json meta_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<Ema> ema_;
  int64_t step_ = 0;
  double elapsed_before_ = 0;  // seconds trained by earlier (resumed) runs
  double elapsed_ = 0;         // seconds trained in total so far
};

/// Path of the checkpoint inside a run directory.
std::string checkpoint_path(const std::string& run_dir);
/// Reads the `meta` JSON stored in a checkpoint; errors name the file and suggest a fix.
Json read_checkpoint_meta(const std::string& path);
/// Writes a weights-only checkpoint (model + meta) atomically, for models fitted in closed form;
/// read_checkpoint_meta and load_checkpoint_weights read it like a trainer checkpoint.
void save_weights(const std::string& path, torch::nn::Module& module, const Json& meta);
/// Loads the model weights (EMA weights when `ema` and present) from a checkpoint into `module`.
void load_checkpoint_weights(const std::string& path, torch::nn::Module& module, bool ema);

}  // namespace gm::train

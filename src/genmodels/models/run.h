// The commands behind the CLI, as library calls: train a registered model into a run directory,
// sample from a run, evaluate samples or a run, print a model's default configuration, list what
// is registered. The CLI only parses arguments into these structs.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/models/registry.h"

namespace gm {

struct TrainArgs {
  std::string model;                  ///< registry name, e.g. "ddpm"
  std::optional<std::string> data;    ///< overrides data.name
  std::optional<std::string> data_b;  ///< overrides data.name_b (unpaired translation)
  std::string config_file;            ///< TOML (optional)
  std::vector<std::string> sets;      ///< "key=value" overrides
  std::optional<int64_t> steps;
  std::optional<double> minutes;
  std::optional<uint64_t> seed;
  std::optional<std::string> device;
  std::string out;      ///< run directory ("" = runs/<model>-<time>)
  bool resume = false;  ///< continue the run in `out` from its checkpoint
  int threads = 0;      ///< 0 = all cores
  int64_t stop_at = 0;  ///< stop as if interrupted after this step (testing)
  std::string init;     ///< FILE.safetensors: initial weights of a fresh run (models/export.h)
};

/// Trains (or fits) and returns the run directory.
std::string run_train(const TrainArgs& args);
/// Throws gm::Error unless the model `args` would train (or resume) trains by gradient steps,
/// which data-parallel training (--nproc) needs; closed-form fits do not.
void check_data_parallel(const TrainArgs& args);

/// A CLI flag that is another name for a config key (`--steps 25` is `--set sample.steps=25`).
struct FlagKey {
  std::string flag;  ///< "--steps"
  std::string key;   ///< "sample.steps"
  std::string help;  ///< one line (choices are appended from the key's schema)
};
/// The sample-time flags of `sample` and `eval`.
const std::vector<FlagKey>& sample_flags();

struct SampleArgs {
  std::string run;                ///< run directory (or a checkpoint file)
  std::vector<std::string> sets;  ///< "sample.KEY=V" (and model.precision) overrides
  int64_t n = 64;
  int64_t class_label = -1;
  std::string prompt;          ///< text-conditional runs: what to draw ("" = each class's prompt)
  std::string clip;            ///< diffusion and score runs: a clip run that guides toward `prompt`
  double clip_guidance = 3.0;  ///< the scale s of the CLIP guidance gradient
  uint64_t seed = 0;
  std::string out;       ///< directory for grid.png ("" = RUN/samples)
  std::string npy;       ///< write all samples as uint8 .npy ("" = none)
  bool singles = false;  ///< also one PNG per sample
  /// diffusion and score runs: keep finished batches in this directory and resume from it
  /// (sampling/batch_cache.h; "" = none)
  std::string keep_batches;
  bool raw_weights = false;  ///< use the raw weights instead of the EMA weights
  int threads = 0;
  bool quiet = false;
  /// `sample --from IMG.png`: write only one image of the batch to this file, exactly as the
  /// original command wrote it: image `regen_index`'s single PNG, or the grid when it is -1.
  std::string regen_file;
  int64_t regen_index = -1;
};

/// The command line that reproduces a sample batch (a PNG's `parameters` chunk).
std::string sample_command(const SampleArgs& args);

/// `genmodels info IMG.png`: the generation parameters a PNG carries, as lines "key: value",
/// the command first; a gm::Error naming the file when it has none.
std::string png_info(const std::string& png);

/// `genmodels sample --from IMG.png`: the arguments of the command stored in IMG's `parameters`
/// chunk (without the leading "genmodels sample"), and the index of the image in its batch (-1 for
/// a grid). Errors name the file.
std::vector<std::string> regeneration_args(const std::string& png, int64_t* index);

/// A trained run's model with its EMA weights, in eval mode on the CPU (e.g. the clip run whose
/// text features condition a ddpm); throws gm::Error naming `run` when it cannot be opened.
std::unique_ptr<Model> load_trained_model(const std::string& run);

/// A trained run loaded for sampling: its registry row, its config (device cpu), its data and its
/// model with the EMA (or raw) weights in eval mode. Loaded once, it can be sampled many times.
struct LoadedRun {
  const ModelEntry* entry = nullptr;
  Config config;
  DataInfo info;
  std::unique_ptr<Model> model;
  int64_t checkpoint_step = -1;  ///< the training step of the loaded weights
};
/// Loads a run; `sets` change sample.* keys (and model.precision) before the model is built.
LoadedRun load_run(const std::string& run, bool raw_weights, const std::vector<std::string>& sets);
/// sample_run on a run already loaded (args.sets were given to load_run): draws and names how.
/// `progress` (done, total), when given, replaces the progress bar; it may throw to stop.
SampleResult sample_loaded(LoadedRun& run, const SampleArgs& args,
                           const std::function<void(int64_t, int64_t)>& progress = {});

/// Loads a run and draws samples (no files written).
SampleResult sample_run(const SampleArgs& args);

/// Samples from a run; writes the grid (and .npy / single PNGs) and returns the grid's path.
std::string run_sample(const SampleArgs& args);

struct TranslateArgs {
  std::string run;        ///< a pix2pix or cyclegan run directory
  std::string input;      ///< DIR of images, FILE.png, FILE.npy, or a dataset spec (test split)
  std::string direction;  ///< "AtoB", "BtoA" or "" (the run's)
  std::vector<std::string> sets;  ///< "sample.KEY=V" overrides (e.g. sample.test_dropout=false)
  std::string out;                ///< output directory ("" = RUN/translations)
  std::string npy;                ///< also write the outputs as uint8 .npy ("" = none)
  int64_t n = 0;                  ///< translate the first n inputs (0 = all)
  uint64_t seed = 0;
  bool grid_only = false;    ///< skip the one-PNG-per-output files
  bool raw_weights = false;  ///< raw instead of EMA weights
  int threads = 0;
  bool quiet = false;
};
struct TranslateResult {
  std::string grid;  ///< the side-by-side grid written
  Json metrics;      ///< translation_metrics() (also written as OUT/translate.json)
};
/// Translates inputs with a run's generator: one PNG per output (with metadata), a side-by-side
/// grid input | output | (target), the metrics the inputs allow, and optionally a .npy (with a
/// .labels.npy of the expected classes when known).
TranslateResult run_translate(const TranslateArgs& args);

struct LikelihoodArgs {
  std::string run;  ///< run directory (or checkpoint)
  int64_t n = 0;    ///< test examples (0 = the whole test split)
  int64_t k = 0;    ///< importance samples (0 = the model's default)
  uint64_t seed = 0;
  int threads = 0;
  bool raw_weights = false;  ///< raw instead of EMA weights
};

/// Test negative log-likelihood of a run's model on its dataset's test split
/// (Model::test_likelihood plus "model" and "data").
Json run_likelihood(const LikelihoodArgs& args);

struct EvalArgs {
  std::string target;  ///< RUN directory, FILE.npy or DIR of PNGs
  std::vector<std::string> metrics = {"fid", "kid", "pr", "acc", "is"};  ///< and "nll" for runs
  int64_t n = 10000;  ///< samples drawn from a run / used from a file
  /// test examples for nll: -1 = n, 0 = the model's default (the CLI passes 0 without --n)
  int64_t nll_n = -1;
  int64_t k = 0;  ///< importance samples for nll (0 = the model's default)
  uint64_t seed = 0;
  std::string json;               ///< where to write the result ("" = beside the target)
  std::vector<std::string> sets;  ///< sample-time overrides for a run target
  int threads = 0;
  std::string clip;    ///< clip_score: the clip run that scores
  std::string prompt;  ///< clip_score: one prompt for every image ("" = from the class labels)
  std::string keep_batches;  ///< run targets: SampleArgs::keep_batches of the sampling
};

struct EvalResult {
  Json result;            ///< {"metrics": {...}, "n", "target", "likelihood"?, ...}
  std::string json_path;  ///< where it was written
};

/// Scores a run (samples drawn from it, and/or its likelihood) or a sample file/folder against
/// the Fashion-MNIST test set (metrics/evaluate.h); 2-D runs get SWD and MMD. Writes the JSON.
EvalResult run_eval(const EvalArgs& args);

/// (Re)trains the evaluator network into the cache.
void train_evaluator();

/// The model's full default configuration as TOML, one comment line per key; fed back with
/// --config it reproduces the defaults.
std::string default_config(const std::string& model);

/// Human-readable listing of models, samplers, schedules and datasets.
std::string list_registry();

}  // namespace gm

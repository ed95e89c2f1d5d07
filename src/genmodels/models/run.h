// The commands behind the CLI, as library calls: train a registered model into a run directory,
// sample from a run, evaluate samples, list what is registered. The CLI only parses arguments.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "genmodels/core/json.h"
#include "genmodels/models/model.h"

namespace gm {

struct TrainArgs {
  std::string model;                ///< registry name, e.g. "ddpm"
  std::optional<std::string> data;  ///< overrides data.name
  std::string config_file;          ///< TOML (optional)
  std::vector<std::string> sets;    ///< "key=value" overrides
  std::optional<int64_t> steps;
  std::optional<double> minutes;
  std::optional<uint64_t> seed;
  std::optional<std::string> device;
  std::string out;      ///< run directory ("" = runs/<model>-<time>)
  bool resume = false;  ///< continue the run in `out` from its checkpoint
  int threads = 0;      ///< 0 = all cores
  int64_t stop_at = 0;  ///< stop as if interrupted after this step (testing)
};

/// Trains and returns the run directory.
std::string run_train(const TrainArgs& args);

struct SampleArgs {
  std::string run;      ///< run directory (or a checkpoint file)
  std::string sampler;  ///< "" = the run's default
  int64_t steps = 0;
  double eta = 0;
  std::string spacing, variance;
  int64_t n = 64;
  int64_t class_label = -1;
  double guidance = -1;
  double temperature = -1;  ///< flows (-1 = the run's sample.temperature)
  uint64_t seed = 0;
  std::string out;           ///< directory for grid.png ("" = RUN/samples)
  std::string npy;           ///< write all samples as uint8 .npy ("" = none)
  bool singles = false;      ///< also one PNG per sample
  bool raw_weights = false;  ///< use the raw weights instead of the EMA weights
  std::string precision;     ///< "fp32" | "bf16" network arithmetic ("" = the run's)
  int threads = 0;
  bool quiet = false;
};

/// Loads a run and draws samples (no files written).
SampleResult sample_run(const SampleArgs& args);

/// Samples from a run; writes the grid (and .npy / single PNGs) and returns the grid's path.
std::string run_sample(const SampleArgs& args);

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

/// Human-readable listing of models, samplers, schedules and datasets.
std::string list_registry();

}  // namespace gm

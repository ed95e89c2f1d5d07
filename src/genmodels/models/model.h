// The model interface every family implements and the registry the CLI is built from.
// A model = how to build it from a config, the loss of one batch, and sampling; the trainer,
// checkpoints, EMA, logging and evaluation are shared (train/, metrics/).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "genmodels/core/config.h"
#include "genmodels/core/json.h"
#include "genmodels/data/dataset.h"

namespace gm {

/// What a model needs to know about its data; stored in the checkpoint so sampling needs no data.
struct DataInfo {
  std::string dataset;                   ///< the spec it was trained on
  std::vector<int64_t> shape;            ///< one example: {C, H, W} or {D}
  std::vector<std::string> class_names;  ///< empty when unlabeled
  bool is_image() const { return shape.size() == 3; }
  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
  Json to_json() const;
  static DataInfo from_json(const Json& j);
};

struct SampleRequest {
  int64_t n = 64;            ///< number of samples
  std::string sampler;       ///< "" = the model's default
  int64_t steps = 0;         ///< sampler steps (0 = default)
  double eta = 0.0;          ///< DDIM eta
  std::string spacing;       ///< timestep spacing ("" = default)
  std::string variance;      ///< DDPM variance: "beta" | "beta_tilde" ("" = default)
  int64_t class_label = -1;  ///< -1: every class in turn (conditional models)
  double guidance = -1;      ///< classifier-free guidance scale (-1 = default)
  double temperature = -1;   ///< flows: latent temperature (-1 = default)
  uint64_t seed = 0;
  std::function<void(int64_t, int64_t)> progress;  ///< (done, total) per sampler step
};

struct SampleResult {
  torch::Tensor x;       ///< float samples: images in [-1, 1] N x C x H x W, or N x D
  torch::Tensor labels;  ///< int64 N requested classes, undefined when unconditional
  std::map<std::string, std::string> params;  ///< how to make it again (PNG metadata)
};

class Model {
 public:
  virtual ~Model() = default;
  /// The network(s) the trainer optimises, averages (EMA) and checkpoints.
  virtual torch::nn::Module& module() = 0;
  /// Loss of one batch; randomness only from LibTorch's default generator.
  virtual torch::Tensor loss(const torch::Tensor& x, const torch::Tensor& y) = 0;
  /// Draws samples (call under the weights you want, e.g. EMA).
  virtual SampleResult sample(const SampleRequest& request) = 0;

  /// Closed-form models (GDA, naive Bayes) are fitted in one call instead of by gradient steps:
  /// `genmodels train` then calls fit() and skips the trainer.
  virtual bool closed_form() const { return false; }
  /// Fits on `train`, scores `test`; returns the report that `genmodels train` prints and saves
  /// (accuracy, bits/dim, fit and predict seconds, ...). Randomness only from `seed`.
  virtual Json fit(const data::Dataset& train, const data::Dataset& test, uint64_t seed);

  /// Density models: the test negative log-likelihood on the first `n` examples of `test` (0 =
  /// all), with `k` importance samples where the model estimates it (0 = the model's default).
  /// Returns at least {"nll_nats", "n"} and, for images, "bits_per_dim" (under the convention of
  /// metrics/bits_per_dim.h). Models without a likelihood throw gm::Error.
  virtual Json test_likelihood(const data::Dataset& test, int64_t n, int64_t k, uint64_t seed);

  /// Model-specific figures written into `dir` after training (VAE: reconstructions, latent
  /// interpolations, latent scatter); returns the files written.
  virtual std::vector<std::string> write_figures(const std::string& dir, const data::Dataset& test,
                                                 uint64_t seed) {
    return {};
  }
};

struct ModelEntry {
  std::string name;                    ///< "ddpm"
  std::string family;                  ///< "diffusion"
  std::string description;             ///< one line for `genmodels list`
  std::vector<ConfigKey> config_keys;  ///< model-specific keys (defaults = recommended setup)
  std::function<std::unique_ptr<Model>(const Config&, const DataInfo&)> create;
};

/// Every registered model.
const std::vector<ModelEntry>& model_registry();
/// The entry named `name`; the error lists the valid names.
const ModelEntry& find_model(const std::string& name);

/// Keys every run has (seed, data.*, device) plus the trainer's, plus the model's.
Config make_config(const ModelEntry& entry);

}  // namespace gm
